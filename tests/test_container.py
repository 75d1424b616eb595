"""The .spic container: serialisation, and every kind of bad file."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest
from conftest import random_image

from segpic_codec import container
from segpic_codec.container import ContainerError, Header
from segpic_codec.model import CodedStreams


def _streams(n_slices: int = 10) -> CodedStreams:
    return CodedStreams(
        prototype_streams=[b"\x01\x02\x03\x04" * 3, b"\x05\x06\x07\x08"],
        z_stream=b"\x11" * 40,
        y_streams=[bytes([i]) * (4 * (i + 1) * 37) for i in range(n_slices)],
        latent_height=2,
        latent_width=3,
    )


HEADER = Header(model="small", weights_id="0123abcd", quality=3.5, width=33, height=20, grid=4)


def _fix_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def test_pack_unpack_roundtrip():
    data = container.pack(HEADER, _streams())
    header, streams = container.unpack(data)
    assert header == HEADER
    original = _streams()
    assert streams.prototype_streams == original.prototype_streams
    assert streams.z_stream == original.z_stream
    assert streams.y_streams == original.y_streams
    assert (streams.latent_height, streams.latent_width) == (4, 4)  # 64x64 padded / 16


def test_overhead_is_small():
    data = container.pack(HEADER, _streams())
    _, lengths, _ = container.read_header(data)
    assert len(data) - sum(lengths) <= 40


def _boundaries(data: bytes) -> list[int]:
    _, lengths, offset = container.read_header(data)
    cuts = list(range(offset + 1))
    for n in lengths:
        offset += n
        cuts.append(offset)
    cuts += [len(data) - 4, len(data) - 1]
    return sorted(set(cuts))


def test_truncated_at_every_stream_boundary_and_header_byte():
    data = container.pack(HEADER, _streams())
    for cut in _boundaries(data):
        if cut >= len(data):
            continue
        with pytest.raises(ContainerError):
            container.unpack(data[:cut])


def test_every_single_byte_flip_is_caught():
    data = container.pack(HEADER, _streams(n_slices=10))
    for i in range(len(data)):
        broken = bytearray(data)
        broken[i] ^= 0x5A
        with pytest.raises(ContainerError):
            container.unpack(bytes(broken))


def test_wrong_magic():
    data = container.pack(HEADER, _streams())
    with pytest.raises(ContainerError, match="not a .spic file"):
        container.unpack(b"PNG!" + data[4:])
    with pytest.raises(ContainerError, match="not a .spic file"):
        container.unpack(b"")


def test_future_version():
    data = bytearray(container.pack(HEADER, _streams()))
    data[4] = 9
    with pytest.raises(ContainerError, match="version 9"):
        container.unpack(_fix_crc(bytes(data)))


def _with_dimensions(width: int, height: int) -> bytes:
    data = container.pack(HEADER, _streams())
    # the dimensions are the first two varints after the 12 fixed bytes
    fixed = data[:12]
    reader = container._Reader(data, len(data))
    reader.pos = 12
    reader.varint("x")
    reader.varint("x")
    rest = data[reader.pos:]
    return _fix_crc(fixed + container._varint(width - 1) + container._varint(height - 1) + rest)


@pytest.mark.parametrize("dims", [(1 << 20, 1 << 20), (70000, 2), (60000, 60000)])
def test_absurd_dimensions_refused_without_allocation(dims):
    data = _with_dimensions(*dims)
    tracemalloc.start()
    with pytest.raises(ContainerError, match="size limit"):
        container.unpack(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_overlong_varint():
    data = container.pack(HEADER, _streams())
    broken = data[:12] + b"\xff" * 8 + data[12:]
    with pytest.raises(ContainerError):
        container.unpack(_fix_crc(broken))


def test_unknown_model_and_bad_fields():
    data = bytearray(container.pack(HEADER, _streams()))
    for offset, value, message in [(5, 77, "model id"), (10, 0, "quality"), (11, 0, "grid"),
                                   (11, 99, "grid")]:
        broken = bytearray(data)
        broken[offset] = value
        with pytest.raises(ContainerError, match=message):
            container.unpack(_fix_crc(bytes(broken)))


def test_wrong_stream_count():
    streams = _streams(n_slices=9)
    data = container.pack(HEADER, streams)
    with pytest.raises(ContainerError, match="streams"):
        container.unpack(data)


def test_real_file_roundtrip_through_container(tiny_codec):
    result = tiny_codec.encode(random_image(40, 50), quality=2)
    header, _ = container.unpack(result.data)
    assert header.model == "tiny"
    assert header.weights_id == tiny_codec.weights_id

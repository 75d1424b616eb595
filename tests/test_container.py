"""The .spic container frame and SegPIC's header in it: serialisation, every kind of
bad file, and the version-1 files made before the frame existed."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest
from conftest import REPO, random_image

from segpic_codec import container
from segpic_codec.codecs import CodedImage
from segpic_codec.container import ContainerError
from segpic_codec.segpic import layout
from segpic_codec.segpic.layout import CodedStreams, Header

V1_FILES = sorted((REPO / "tests" / "data" / "v1").glob("*.spic"))


def _streams(n_slices: int = 10) -> CodedStreams:
    return CodedStreams(
        prototype_streams=[b"\x01\x02\x03\x04" * 3, b"\x05\x06\x07\x08"],
        z_stream=b"\x11" * 40,
        y_streams=[bytes([i]) * (4 * (i + 1) * 37) for i in range(n_slices)],
        latent_height=2,
        latent_width=3,
    )


HEADER = Header(model="small", weights_id="0123abcd", quality=3.5, width=33, height=20, grid=4)


def _pack(header: Header, streams: CodedStreams) -> bytes:
    """A SegPIC file as an encode writes it: SegPIC's payload and streams, packed
    by the shared layer (`codecs.CodedImage.frame`)."""
    return CodedImage("segpic", header.width, header.height, layout.pack_payload(header),
                      layout.stream_list(streams), header.quality).frame()


def _fix_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def test_pack_unpack_roundtrip():
    data = _pack(HEADER, _streams())
    header, streams = layout.unpack(data)
    assert header == HEADER
    original = _streams()
    assert streams.prototype_streams == original.prototype_streams
    assert streams.z_stream == original.z_stream
    assert streams.y_streams == original.y_streams
    assert (streams.latent_height, streams.latent_width) == (4, 4)  # 64x64 padded / 16


def test_overhead_is_small():
    data = _pack(HEADER, _streams())
    _, lengths, _ = layout.read_header(data)
    assert len(data) - sum(lengths) <= 40


def _boundaries(data: bytes) -> list[int]:
    _, lengths, offset = layout.read_header(data)
    cuts = list(range(offset + 1))
    for n in lengths:
        offset += n
        cuts.append(offset)
    cuts += [len(data) - 4, len(data) - 1]
    return sorted(set(cuts))


def test_truncated_at_every_stream_boundary_and_header_byte():
    data = _pack(HEADER, _streams())
    for cut in _boundaries(data):
        if cut >= len(data):
            continue
        with pytest.raises(ContainerError):
            layout.unpack(data[:cut])


def test_every_single_byte_flip_is_caught():
    data = _pack(HEADER, _streams(n_slices=10))
    for i in range(len(data)):
        broken = bytearray(data)
        broken[i] ^= 0x5A
        with pytest.raises(ContainerError):
            layout.unpack(bytes(broken))


def test_wrong_magic():
    data = _pack(HEADER, _streams())
    with pytest.raises(ContainerError, match="not a .spic file"):
        layout.unpack(b"PNG!" + data[4:])
    with pytest.raises(ContainerError, match="not a .spic file"):
        layout.unpack(b"")


def test_future_version():
    data = bytearray(_pack(HEADER, _streams()))
    data[4] = 9
    with pytest.raises(ContainerError, match="version 9"):
        layout.unpack(_fix_crc(bytes(data)))


def _with_dimensions(width: int, height: int) -> bytes:
    data = _pack(HEADER, _streams())
    # the dimensions are the first two varints after the 6 fixed bytes (magic,
    # version, codec id)
    fixed = data[:6]
    reader = container._Reader(data, len(data))
    reader.pos = 6
    reader.varint("x")
    reader.varint("x")
    rest = data[reader.pos:]
    return _fix_crc(fixed + container.varint(width - 1) + container.varint(height - 1) + rest)


@pytest.mark.parametrize("dims", [(1 << 20, 1 << 20), (70000, 2), (60000, 60000)])
def test_absurd_dimensions_refused_without_allocation(dims):
    data = _with_dimensions(*dims)
    tracemalloc.start()
    with pytest.raises(ContainerError, match="size limit"):
        layout.unpack(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_overlong_varint():
    data = _pack(HEADER, _streams())
    broken = data[:6] + b"\xff" * 8 + data[6:]
    with pytest.raises(ContainerError):
        layout.unpack(_fix_crc(broken))


def test_unknown_model_and_bad_fields():
    data = bytearray(_pack(HEADER, _streams()))
    # 33x20: one byte per dimension, then the payload length; SegPIC's payload
    # (model id, weights id, quality, grid) starts at byte 9
    assert data[8] == 7
    for offset, value, message in [(9, 77, "model id"), (14, 0, "quality"), (15, 0, "grid"),
                                   (15, 99, "grid")]:
        broken = bytearray(data)
        broken[offset] = value
        with pytest.raises(ContainerError, match=message):
            layout.unpack(_fix_crc(bytes(broken)))


def test_wrong_stream_count():
    streams = _streams(n_slices=9)
    data = _pack(HEADER, streams)
    with pytest.raises(ContainerError, match="streams"):
        layout.unpack(data)


def test_real_file_roundtrip_through_container(tiny_codec):
    result = tiny_codec.encode(random_image(40, 50), quality=2)
    header, _ = layout.unpack(result.data)
    assert header.model == "tiny"
    assert header.weights_id == tiny_codec.weights_id


@pytest.mark.parametrize("streams", [
    [b"\x01\x02\x03\x04", b"", b"\x09" * 64],  # whole words: lengths in words
    [b"\x01\x02\x03", b"", b"\x09" * 65, b"\x07"],  # any bytes: lengths in bytes
])
def test_frame_roundtrip_any_codec_payload(streams):
    data = container.pack("moric", 7, 5, b"\x01\x02\x03", streams)
    frame = container.read_frame(data)
    assert (frame.version, frame.codec, frame.width, frame.height) == (2, "moric", 7, 5)
    assert frame.payload == b"\x01\x02\x03"
    assert container.split_streams(data, frame) == streams
    for cut in range(len(data)):
        with pytest.raises(ContainerError):
            container.read_frame(data[:cut])


def test_frame_refuses_unknown_codec_and_huge_payload():
    data = bytearray(container.pack("moric", 7, 5, b"", [b""]))
    data[5] = 200
    with pytest.raises(ContainerError, match="unknown codec id 200"):
        container.read_frame(_fix_crc(bytes(data)))
    huge = bytes(data[:5]) + bytes([2, 6, 4]) + container.varint(1 << 30) + b"\0" * 8
    with pytest.raises(ContainerError, match="codec header"):
        container.read_frame(_fix_crc(huge))


def test_segpic_layout_refuses_other_codecs():
    data = container.pack("moric", 7, 5, b"", [b""])
    with pytest.raises(ContainerError, match="not a SegPIC file"):
        layout.unpack(data)


def test_new_files_are_version_2():
    data = _pack(HEADER, _streams())
    assert data[4] == container.VERSION == 2
    assert container.read_frame(data).codec == "segpic"


@pytest.mark.parametrize("path", V1_FILES, ids=lambda p: p.name)
def test_version_1_files_still_parse(path):
    data = path.read_bytes()
    assert data[4] == 1
    header, lengths, _ = layout.read_header(data)
    assert header.model == "small"
    assert len(lengths) == 13
    frame = container.read_frame(data)
    assert (frame.version, frame.codec) == (1, "segpic")
    assert (frame.width, frame.height) == (header.width, header.height)


def test_version_1_files_are_committed():
    assert len(V1_FILES) >= 3

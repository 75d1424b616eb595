"""MoRIC's range-coded parameter stream, and files written before it (their
parameters exp-Golomb coded) still decoding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segpic_codec import container
from segpic_codec.moric import codec, layout
from segpic_codec.moric.bitstream.expgolomb import code_length
from segpic_codec.moric.bitstream.param_stream import (
    MAX_VALUE_BITS,
    NUM_SCALES,
    best_scale,
    decode_groups,
    encode_groups,
    group_pmf,
    laplace_scale,
)
from segpic_codec.moric.bitstream.region_info import lsn_bits_and_arm
from segpic_codec.moric.errors import MoricFormatError

OLD_FILES = Path(__file__).parent / "data" / "moric-v1"


def _groups(seed: int) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    values = [np.round(rng.laplace(0, s, n)).astype(np.int64)
              for s, n in ((3.0, 576), (0.7, 34), (60.0, 24), (0.0, 12), (8.0, 699))]
    values += [np.zeros(0, dtype=np.int64), np.array([(1 << MAX_VALUE_BITS) - 1, -5, 0])]
    return [(v, best_scale(v)[0]) for v in values]


@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_and_estimated_bits(seed):
    groups = _groups(seed)
    data = encode_groups(groups)
    decoded = decode_groups(data, [(v.size, s) for v, s in groups])
    for (v, _), d in zip(groups, decoded, strict=True):
        np.testing.assert_array_equal(d, v)
    estimate = sum(best_scale(v)[1] for v, _ in groups if v.size)
    # the estimate is what the step search uses: the coder spends it, give or
    # take its termination word and the quantisation of the probabilities
    assert estimate - 8 < 8 * len(data) < estimate * 1.01 + 64


def test_beats_exp_golomb_on_laplacian_values():
    rng = np.random.default_rng(3)
    values = np.round(rng.laplace(0, 4.0, 2000)).astype(np.int64)
    best_golomb = min(code_length(values, k) for k in range(8))
    assert best_scale(values)[1] < 0.97 * best_golomb


def test_scales_and_table_are_exact_and_normalised():
    for index in (0, 5, 8, 37, NUM_SCALES - 1):
        assert laplace_scale(index) == pytest.approx(2.0 ** (index / 8 - 4), rel=1e-14)
    pmf = group_pmf(40, 10)  # scale 2**1
    assert pmf.sum() == pytest.approx(1.0, abs=1e-8)  # tails floored at 2**-40
    b = laplace_scale(40)
    assert pmf[1023] == pytest.approx(1 - math.exp(-0.5 / b), rel=1e-12)
    assert pmf[1023 + 3] == pytest.approx(0.5 * (math.exp(-2.5 / b) - math.exp(-3.5 / b)),
                                          rel=1e-12)
    np.testing.assert_array_equal(pmf, pmf[::-1])  # zero mean: symmetric


def test_values_beyond_the_stream_are_refused():
    too_big = np.array([1 << MAX_VALUE_BITS])
    assert best_scale(too_big)[1] == math.inf
    with pytest.raises(ValueError):
        encode_groups([(too_big, 0)])


def test_corrupt_streams_raise_format_errors():
    groups = _groups(2)
    data = encode_groups(groups)
    spec = [(v.size, s) for v, s in groups]
    rng = np.random.default_rng(4)
    bad = [data[:-4], data + b"\0\0\0\0", data[:5], b""]
    for _ in range(30):
        corrupt = bytearray(data)
        corrupt[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        bad.append(bytes(corrupt))
    for stream in bad:
        try:
            out = decode_groups(stream, spec)
        except MoricFormatError:
            continue
        # a flipped bit may still decode: then to values of the right counts
        assert [o.size for o in out] == [n for n, _ in spec]
    with pytest.raises(MoricFormatError):
        decode_groups(data[:-1], spec)


def _read(path: Path) -> tuple[container.FrameHeader, list[bytes]]:
    data = path.read_bytes()
    frame = container.read_frame(data)
    return frame, container.split_streams(data, frame)


@pytest.mark.parametrize("name", ["parrots-24x17-none", "parrots-40x32-auto"])
def test_files_with_exp_golomb_parameters_still_decode(name):
    """Written at 2e01a61 (before range-coded parameters) with 30 steps."""
    frame, streams = _read(OLD_FILES / f"{name}.spic")
    header = layout.unpack(frame.payload)
    assert not header.range_coded
    pixels = codec.decode(frame.payload, streams, frame.width, frame.height)
    expected = np.asarray(Image.open(OLD_FILES / f"{name}.decoded.png"))
    np.testing.assert_array_equal(pixels, expected)
    lsn_bits, arm = lsn_bits_and_arm(header, streams[0])
    assert len(lsn_bits) == header.regions and all(b > 0 for b in lsn_bits)


def test_new_files_are_range_coded_and_smaller_on_a_tiny_image():
    frame, _ = _read(OLD_FILES / "parrots-24x17-none.spic")
    old = frame.payload, (OLD_FILES / "parrots-24x17-none.spic").stat().st_size
    pixels = np.asarray(Image.open(OLD_FILES / "parrots-24x17-none.decoded.png"))
    enc = codec.encode(pixels, quality=2.0, steps=30, regions="none", seed=0)
    header = layout.unpack(enc.payload)
    assert header.range_coded and not layout.unpack(old[0]).range_coded
    lsn_bits, _ = lsn_bits_and_arm(header, enc.streams[0])
    assert lsn_bits[0] > 0
    decoded = codec.decode(enc.payload, enc.streams, 24, 17)
    np.testing.assert_array_equal(decoded, enc.reconstruction)
    size = len(container.pack("moric", 24, 17, enc.payload, enc.streams))
    assert size < old[1]


def test_header_model_byte_is_checked_against_the_stream_kind():
    frame, _ = _read(OLD_FILES / "parrots-24x17-none.spic")
    payload = bytearray(frame.payload)
    fixed = layout.SIZE - 16
    payload[fixed + 1] = 40  # an exp-Golomb order of 40: refused
    with pytest.raises(MoricFormatError):
        layout.unpack(bytes(payload))
    flags = 8  # offset of the flags byte (version, quality u16, preset, steps u32)
    payload[flags] |= 4  # range coded: 40 is a valid scale index ...
    assert layout.unpack(bytes(payload)).range_coded
    payload[fixed + 1] = NUM_SCALES  # ... and 160 is not
    with pytest.raises(MoricFormatError):
        layout.unpack(bytes(payload))

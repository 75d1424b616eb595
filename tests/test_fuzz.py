"""Fuzzing the .spic parser and decoder with hypothesis.

Real files of the tiny model are mutated: bit flips, truncation, inserted and
deleted bytes, header fields set to 0 / max / "negative" (all-ones) / overlong
varints, dimensions, qualities and grids changed to other valid values, streams
replaced by random bytes, emptied, swapped or duplicated. Each mutation is tried
raw (the CRC catches it) and, mostly, with the CRC recomputed, so that it gets
past the checksum into the stream table, the range decoders and the network.

Every case must end in an image of the header's size or in the codec's own error
type (`SegpicError`), within a bounded time. The pixel limit is set low so that a
mutated header cannot ask for a large decode (the limit itself is tested in
test_container.py and test_reliability.py).

CI runs SEGPIC_FUZZ_CASES cases (default 300, deterministic). A long run by hand:

    SEGPIC_FUZZ_CASES=5000 python -m pytest tests/test_fuzz.py -q -s \\
        -p no:cacheprovider --hypothesis-show-statistics

(a long run draws new random cases each time; SEGPIC_FUZZ_SEED=N repeats one).
"""

from __future__ import annotations

import os
import struct
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import random_image
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from segpic_codec import container
from segpic_codec.errors import SegpicError
from segpic_codec.segpic import layout as segpic_layout

CASES = int(os.environ.get("SEGPIC_FUZZ_CASES", "300"))
LONG_RUN = "SEGPIC_FUZZ_CASES" in os.environ
FUZZ_MAX_PIXELS = 4096  # worst padded decode: 1 x 4096 -> 64 x 4096 pixels
# CPU seconds per case (all threads): CPU time, not wall time, so that a machine
# busy with other work cannot fail the test; typical cases take 0-0.2 s
CASE_CPU_SECONDS = 30.0
RSS_GROWTH_LIMIT = 1 << 30  # bytes the whole fuzz run may add to peak memory

OUTCOMES: Counter[str] = Counter()


def _fuzz_settings(func):
    func = settings(
        max_examples=CASES,
        deadline=None,  # timed by hand below: hypothesis' deadline is flaky under load
        derandomize=not LONG_RUN,  # CI: the same cases every run
        database=None,  # no .hypothesis/ folder in the repository
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(func)
    if "SEGPIC_FUZZ_SEED" in os.environ:
        func = seed(int(os.environ["SEGPIC_FUZZ_SEED"]))(func)
    return func


@pytest.fixture(scope="module", autouse=True)
def low_pixel_limit():
    old = os.environ.get("SEGPIC_MAX_PIXELS")
    os.environ["SEGPIC_MAX_PIXELS"] = str(FUZZ_MAX_PIXELS)
    yield
    if old is None:
        del os.environ["SEGPIC_MAX_PIXELS"]
    else:
        os.environ["SEGPIC_MAX_PIXELS"] = old


@pytest.fixture(scope="module")
def seed_files(tiny_codec) -> list[bytes]:
    """Valid files covering odd shapes, every grid extreme and the quality ends."""
    cases = [((40, 50), 3, 4), ((1, 70), 1, 8), ((64, 64), 6, 1), ((3, 3), 2.5, 2)]
    return [tiny_codec.encode(random_image(h, w, seed=h + w), quality=q, grid=g,
                              reconstruct=False).data
            for (h, w), q, g in cases]


# ------------------------------------------------------------ file surgery
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@dataclass
class Layout:
    """A valid file taken apart: the fixed bytes, the varint fields, the codec's
    header payload and the streams (version-2 frame, any codec)."""

    fixed: bytearray  # magic, version, codec id (6 bytes)
    varints: list[bytes]  # width-1, height-1, payload length, count, lengths (raw)
    payload: bytearray  # the codec's header (SegPIC: model, weights id, quality, grid)
    streams: list[bytes]

    @classmethod
    def parse(cls, data: bytes) -> Layout:
        frame = container.read_frame(data)
        pos, varints = 6, []
        while pos < frame.offset:
            end = pos
            while data[end] & 0x80:
                end += 1
            varints.append(data[pos : end + 1])
            pos = end + 1
            if len(varints) == 3:  # the payload follows its length
                pos += len(frame.payload)
        return cls(bytearray(data[:6]), varints, bytearray(frame.payload),
                   container.split_streams(data, frame))

    def build(self, table_from_streams: bool = True) -> bytes:
        varints = list(self.varints)
        if table_from_streams:  # keep the stream table consistent with the streams
            aligned = all(len(s) % 4 == 0 for s in self.streams)
            unit = 4 if aligned else 1
            varints = varints[:2] + [_varint(len(self.payload)),
                                     _varint(2 * len(self.streams) + aligned)]
            varints += [_varint(len(s) // unit) for s in self.streams[:-1]]
        body = (bytes(self.fixed) + b"".join(varints[:3]) + bytes(self.payload)
                + b"".join(varints[3:]) + b"".join(self.streams))
        return body + struct.pack("<I", zlib.crc32(body))


# (part, index): the frame's fixed bytes, or a byte of SegPIC's header payload
FIXED_FIELDS = {"version": ("fixed", 4), "codec": ("fixed", 5), "model": ("payload", 0),
                "weights": ("payload", 1), "quality": ("payload", 5), "grid": ("payload", 6)}
VARINT_VALUES = {
    "zero": _varint(0),
    "one": _varint(1),
    "max5": b"\xff\xff\xff\xff\x7f",  # the largest 5-byte varint (2^35 - 1)
    "negative": b"\xff\xff\xff\xff\x0f",  # -1 as a 32-bit two's complement
    "unterminated": b"\xff\xff\xff\xff\xff",
    "overlong": b"\xff" * 9 + b"\x01",
    "non_minimal": b"\x80\x80\x00",  # 0, padded
    "empty": b"",
}

positions = st.integers(min_value=0, max_value=1 << 16)
byte_values = st.one_of(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]),
                        st.integers(min_value=0, max_value=255))
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), positions, st.integers(1, 16)),
    st.tuples(st.just("fixed"), st.sampled_from(sorted(FIXED_FIELDS)), byte_values),
    st.tuples(st.just("varint"), st.integers(0, 14),
              st.one_of(st.sampled_from(sorted(VARINT_VALUES)),
                        st.integers(0, 1 << 20))),
    st.tuples(st.just("dims"),
              st.one_of(st.integers(1, 64), st.sampled_from([1, 4096, 4097, 65536])),
              st.one_of(st.integers(1, 64), st.sampled_from([1, 4096, 4097, 65536]))),
    st.tuples(st.just("quality"), st.integers(segpic_layout.QUALITY_STEPS,
                                              6 * segpic_layout.QUALITY_STEPS)),
    st.tuples(st.just("grid"), st.integers(1, segpic_layout.MAX_GRID)),
    st.tuples(st.just("stream"), st.integers(0, 12),
              st.sampled_from(["random", "random_words", "empty", "zeros", "ones",
                               "swap", "duplicate", "grow", "shrink"]),
              st.binary(max_size=256), st.integers(0, 12)),
)


RAW_OPS = ("flip", "truncate", "insert", "delete")


def _apply(data: bytes, op: tuple) -> bytes:
    """One mutation. Raw byte operations leave the CRC as it is; structured ones
    rebuild the file around the change, with a fresh CRC."""
    kind = op[0]
    raw = bytearray(data)
    if kind == "flip":
        if raw:
            i = op[1] % len(raw)
            raw[i] ^= 1 << op[2]
        return bytes(raw)
    if kind == "truncate":
        return bytes(raw[: op[1] % (len(raw) + 1)])
    if kind == "insert":
        i = op[1] % (len(raw) + 1)
        return bytes(raw[:i] + op[2] + raw[i:])
    if kind == "delete":
        i = op[1] % (len(raw) + 1)
        return bytes(raw[:i] + raw[i + op[2] :])
    try:  # on top of earlier raw mutations, as long as the structure survived them
        layout = Layout.parse(_fix_crc(data))
    except SegpicError:
        return data  # structured edits need a parsable file
    if kind == "fixed":
        part, index = FIXED_FIELDS[op[1]]
        getattr(layout, part)[index] = op[2]
        return layout.build()
    if kind == "varint":
        index = op[1] % len(layout.varints)
        value = op[2]
        layout.varints[index] = VARINT_VALUES[value] if isinstance(value, str) else _varint(value)
        return layout.build(table_from_streams=False)
    if kind == "dims":
        layout.varints[0], layout.varints[1] = _varint(op[1] - 1), _varint(op[2] - 1)
        return layout.build()
    if kind == "quality":
        layout.payload[5] = op[1]
        return layout.build()
    if kind == "grid":
        layout.payload[6] = op[1]
        return layout.build()
    _, index, how, payload, other = op
    streams = layout.streams
    i, j = index % len(streams), other % len(streams)
    if how == "random":
        streams[i] = payload
    elif how == "random_words":
        streams[i] = payload[: len(payload) // 4 * 4]
    elif how == "empty":
        streams[i] = b""
    elif how == "zeros":
        streams[i] = bytes(len(streams[i]) or 4)
    elif how == "ones":
        streams[i] = b"\xff" * (len(streams[i]) or 4)
    elif how == "swap":
        streams[i], streams[j] = streams[j], streams[i]
    elif how == "duplicate":
        streams[i] = streams[j]
    elif how == "grow":
        streams[i] = streams[i] + payload[: len(payload) // 4 * 4] + b"\0\0\0\0"
    else:
        streams[i] = streams[i][: len(streams[i]) // 2 // 4 * 4]
    return layout.build()


def _fix_crc(data: bytes) -> bytes:
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def _decode_checked(codec, data: bytes) -> str:
    """Decode; anything but an image of the header's size or a SegpicError fails."""
    start = time.process_time()
    try:
        pixels = codec.decode(data)
    except SegpicError as exc:
        outcome = type(exc).__name__
        if str(exc).startswith("cannot decode"):  # a library error the codec wrapped
            outcome += f" ({exc})"
    else:
        header, _, _ = segpic_layout.read_header(data)
        assert isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8
        assert pixels.shape == (header.height, header.width, 3)
        outcome = "decoded"
    elapsed = time.process_time() - start
    assert elapsed < CASE_CPU_SECONDS, f"one case took {elapsed:.1f} CPU s"
    # the parser alone (segpic info) must agree: a header or a ContainerError
    try:
        segpic_layout.read_header(data)
    except container.ContainerError:
        pass
    OUTCOMES[outcome] += 1
    return outcome


def _peak_rss() -> int:
    try:
        import resource
    except ImportError:  # not POSIX: no peak memory to compare
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def rss_guard():
    before = _peak_rss()
    yield
    growth = _peak_rss() - before
    print(f"\nfuzz outcomes: {dict(OUTCOMES)} ({sum(OUTCOMES.values())} cases); "
          f"peak RSS growth {growth / 2**20:.0f} MiB")
    assert growth < RSS_GROWTH_LIMIT


@_fuzz_settings
@given(which=st.integers(0, 3), ops=st.lists(mutation, min_size=1, max_size=3),
       fix_crc=st.sampled_from([True, True, True, False]))
def test_mutated_files(tiny_codec, seed_files, rss_guard, which, ops, fix_crc):
    original = data = seed_files[which]
    for op in ops:
        data = _apply(data, op)
    if fix_crc:  # past the checksum, into the stream table and the decoders
        data = _fix_crc(data)
    elif len(data) >= 4 and any(op[0] not in RAW_OPS for op in ops):
        data = data[:-4] + original[-4:]  # the raw variant: the CRC must catch it
    outcome = _decode_checked(tiny_codec, data)
    event(f"{ops[0][0]}: {outcome}")


@_fuzz_settings
@given(body=st.binary(max_size=512), version=st.sampled_from([1, 1, 0, 2, 255]))
def test_random_bytes_after_the_magic(tiny_codec, rss_guard, body, version):
    data = _fix_crc(container.MAGIC + bytes([version]) + body + b"\0\0\0\0")
    event(_decode_checked(tiny_codec, data))


def test_unmutated_seeds_decode(tiny_codec, seed_files):
    """The oracle itself: the seed files are valid and decode."""
    for data in seed_files:
        assert _decode_checked(tiny_codec, data) == "decoded"

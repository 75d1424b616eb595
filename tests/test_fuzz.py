"""Fuzzing the .spic parser and the decoders of both codecs with hypothesis.

Real files are mutated: bit flips, truncation, inserted and deleted bytes, header
fields set to 0 / max / "negative" (all-ones) / overlong varints, dimensions and
codec header fields changed to other values (valid or not), streams replaced by
random bytes, emptied, swapped or duplicated. Each mutation is tried raw (the CRC
catches it) and, mostly, with the CRC recomputed, so that it gets past the
checksum into the stream table, the range decoders and the networks.

SegPIC: files of the tiny model (its Codec.decode; SegPIC header fields: model,
weights id, quality, grid). MoRIC: tiny overfitted files (one region, several
regions with crack or C* contours, an object-only file and a one-row image),
through the codec-neutral `codecs.decode` and `codecs.describe` (what `segpic
info` runs), plus MoRIC header fields (version, regions, flags, features, latent
range, quantisation steps...) and contour-stream edits with the contour stream's
own CRC-8 recomputed (so they reach its range decoder and chain decoders); a
sample also goes through the `segpic decode` / `segpic info` commands. Metadata
(frame version 3): SegPIC files given a metadata section of random boxes (kinds,
counts, lengths and contents, valid or not), with raw mutations on top, and the
PNG writer fed random valid boxes.

Every case must end in an image of the header's size or in the codec's own error
type (`SegpicError`, with a one-line message), within bounded CPU time and memory
(each case's own, measured around it: see `case_memory`). The pixel
limit is set low so that a mutated header cannot ask for a large decode (the
limit itself is tested in test_container.py and test_reliability.py).

CI runs SEGPIC_FUZZ_CASES cases per codec (default 300, deterministic). A long
run by hand:

    SEGPIC_FUZZ_CASES=5000 python -m pytest tests/test_fuzz.py -q -s \\
        -p no:cacheprovider --hypothesis-show-statistics

(a long run draws new random cases each time; SEGPIC_FUZZ_SEED=N repeats one).
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import tracemalloc
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import random_image
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from segpic_codec import codecs, container
from segpic_codec.cli import main as cli_main
from segpic_codec.errors import SegpicError
from segpic_codec.image_io import save_png
from segpic_codec.moric import codec as moric_codec
from segpic_codec.moric import layout as moric_layout
from segpic_codec.moric.contours.cstar import ESCAPE, MAX_STEP, CstarChain, CstarCoder
from segpic_codec.moric.contours.entropy import AdaptiveModel, ContourFormatError, Writer, crc8
from segpic_codec.moric.contours.stream import CSTAR
from segpic_codec.segpic import layout as segpic_layout
from segpic_codec.segpic.codec import Codec

CASES = int(os.environ.get("SEGPIC_FUZZ_CASES", "300"))
LONG_RUN = "SEGPIC_FUZZ_CASES" in os.environ
CLI_CASES = max(CASES // 10, 10)  # the command line adds little but its error handling
FUZZ_MAX_PIXELS = 4096  # worst padded decode: 1 x 4096 -> 64 x 4096 pixels
# CPU seconds per case (all threads): CPU time, not wall time, so that a machine
# busy with other work cannot fail the test; typical cases take 0-0.2 s
CASE_CPU_SECONDS = 30.0
# bytes of resident memory one case may add (the pixel limit keeps a decode small;
# typical cases add under 10 MiB)
CASE_MEMORY_LIMIT = 256 << 20

OUTCOMES: defaultdict[str, Counter[str]] = defaultdict(Counter)  # per codec


def _fuzz_settings(func=None, *, max_examples: int = CASES):
    def wrap(func):
        func = settings(
            max_examples=max_examples,
            deadline=None,  # timed by hand below: hypothesis' deadline is flaky under load
            derandomize=not LONG_RUN,  # CI: the same cases every run
            database=None,  # no .hypothesis/ folder in the repository
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(func)
        if "SEGPIC_FUZZ_SEED" in os.environ:
            func = seed(int(os.environ["SEGPIC_FUZZ_SEED"]))(func)
        return func

    return wrap(func) if func is not None else wrap


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """SegPIC's decoder on one intra-op thread: on a busy machine two threads
    spin waiting for each other (seen: 150x the CPU time on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    """SegPIC: valid files covering odd shapes, every grid extreme and the quality ends."""
    cases = [((40, 50), 3, 4), ((1, 70), 1, 8), ((64, 64), 6, 1), ((3, 3), 2.5, 2)]
    return [tiny_codec.encode(random_image(h, w, seed=h + w), quality=q, grid=g,
                              reconstruct=False).data
            for (h, w), q, g in cases]


def _moric_file(pixels: np.ndarray, **options) -> bytes:
    """A MoRIC file of a short optimisation (what the `moric` frontend writes)."""
    encoded = moric_codec.encode(pixels, quality=3.0, steps=20, preset="fast", seed=1,
                                 **options)
    height, width = pixels.shape[:2]
    return container.pack("moric", width, height, encoded.payload, encoded.streams)


@pytest.fixture(scope="module")
def moric_seed_files() -> list[bytes]:
    """MoRIC: valid files of every payload/stream variant (~6 s to make)."""
    img = random_image(32, 40, seed=72)
    labels = np.zeros((32, 40), dtype=np.int32)  # four regions, one inside another
    labels[8:24, 10:30], labels[12:20, 15:22], labels[:5, 30:] = 1, 2, 3
    roi = np.zeros((32, 40), dtype=np.int32)
    roi[6:26, 8:28] = roi[10:14, 12:30] = 1
    row = np.zeros((1, 64), dtype=np.int32)
    row[:, 30:] = 1
    return [
        _moric_file(random_image(17, 24, seed=41), regions="none"),  # version 1
        _moric_file(img, regions="auto"),  # version 2, 3 regions, crack chains
        _moric_file(img, regions=labels, contour_mode="lossy"),  # a C* chain too
        _moric_file(img, roi=roi),  # object only: region 0 not coded, RGBA
        _moric_file(random_image(1, 64, seed=65), regions=row),  # one row, 2 regions
    ]


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
# MoRIC's header payload (moric/layout.py): name -> (offset, struct format, values
# worth trying besides random ones: the ends of each valid range and just past them)
MORIC_FIELDS = {
    "version": (0, ">B", [0, 1, 2, 3, 255]),
    "quality": (1, ">H", [0, 999, 1000, 6000, 6001, 0xFFFF]),
    "preset": (3, ">B", [0, 4, 5, 0xFF]),
    "steps": (4, ">I", [0, 1, 0xFFFFFFFF]),
    "flags": (8, ">B", [0, 1, 2, 3, 4, 0xFF]),
    "features": (9, ">B", [0, 1, 2, 15, 17, 64, 65, 0xFF]),
    "activation": (10, ">B", [0, 1, 2, 0xFF]),
    "regions": (11, ">B", [0, 1, 2, 3, 4, 5, 16, 17, 0xFF]),
    "latent_low": (12, ">h", [-0x8000, -257, -256, -255, -1, 0, 1, 255, 256]),
    "latent_high": (14, ">h", [-256, -1, 0, 1, 255, 256, 0x7FFF]),
    # (module, kind) coding: step exponent, exp-Golomb order, 8 pairs
    **{f"coding{i}": (16 + i, ">B", [0, 1, 2, 8, 14, 15, 16, 17, 20, 24, 25, 0xFF])
       for i in range(16)},
}
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
raw_mutations = [
    st.tuples(st.just("flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), positions, st.integers(1, 16)),
]
varint_mutation = st.tuples(st.just("varint"), st.integers(0, 14),
                            st.one_of(st.sampled_from(sorted(VARINT_VALUES)),
                                      st.integers(0, 1 << 20)))
dims_mutation = st.tuples(
    st.just("dims"),
    st.one_of(st.integers(1, 64), st.sampled_from([1, 4096, 4097, 65536])),
    st.one_of(st.integers(1, 64), st.sampled_from([1, 4096, 4097, 65536])))
stream_mutation = st.tuples(
    st.just("stream"), st.integers(0, 12),
    st.sampled_from(["random", "random_words", "empty", "zeros", "ones",
                     "swap", "duplicate", "grow", "shrink"]),
    st.binary(max_size=256), st.integers(0, 12))
mutation = st.one_of(  # SegPIC
    *raw_mutations,
    st.tuples(st.just("fixed"), st.sampled_from(sorted(FIXED_FIELDS)), byte_values),
    varint_mutation,
    dims_mutation,
    st.tuples(st.just("quality"), st.integers(segpic_layout.QUALITY_STEPS,
                                              6 * segpic_layout.QUALITY_STEPS)),
    st.tuples(st.just("grid"), st.integers(1, segpic_layout.MAX_GRID)),
    stream_mutation,
)
words = st.integers(0, 0xFFFFFFFF)
moric_mutation = st.one_of(
    *raw_mutations,
    st.tuples(st.just("fixed"), st.sampled_from(["codec", "version"]), byte_values),
    varint_mutation,
    dims_mutation,
    # a field to one of its listed values (the index wraps) or to a random one
    st.tuples(st.just("moric_field"), st.sampled_from(sorted(MORIC_FIELDS)),
              st.one_of(st.integers(0, 11), st.tuples(words))),
    stream_mutation,
    # the contour stream (version 2), its CRC-8 recomputed: word 0 fields,
    # chain count, bit flips and new words in the range-coded chains
    st.tuples(st.just("contour"),
              st.sampled_from(["version", "kind", "regions", "base", "count", "flip", "flip",
                               "replace", "append", "truncate"]),
              st.one_of(st.sampled_from([0, 1, 2, 3, 4096, 4097, 0x7FFFFFFF, 0xFFFFFFFF]),
                        words),
              st.integers(0, 7), st.lists(words, max_size=16)),
)


RAW_OPS = ("flip", "truncate", "insert", "delete")
CONTOUR_HEAD = {"version": (0, 15), "kind": (4, 15), "regions": (8, 255), "base": (16, 255)}


def _set_field(payload: bytearray, name: str, choice: int | tuple[int]) -> None:
    """choice: an index into the field's listed values, or (any value,)."""
    offset, fmt, values = MORIC_FIELDS[name]
    value = choice[0] if isinstance(choice, tuple) else values[choice % len(values)]
    size = struct.calcsize(fmt)
    value &= (1 << 8 * size) - 1  # any value: its low bytes, two's complement if signed
    payload[offset:offset + size] = value.to_bytes(size, "big")


def _contour_edit(stream: bytes, op: tuple) -> bytes:
    """Change a contour stream and recompute its CRC-8 (byte 3 of word 0)."""
    _, how, value, bit, new_words = op
    data = bytearray(stream)
    if how in CONTOUR_HEAD:
        shift, mask = CONTOUR_HEAD[how]
        head = int.from_bytes(data[:4], "little") & ~(mask << shift)
        data[:4] = (head | (value & mask) << shift).to_bytes(4, "little")
    elif how == "count":
        data[4:8] = value.to_bytes(4, "little")
    elif how == "flip":
        i = value % len(data)
        if i != 3:  # the CRC-8 byte is rewritten below
            data[i] ^= 1 << bit
    elif how in ("replace", "append"):
        new = struct.pack(f"<{len(new_words)}I", *new_words)
        data = data + new if how == "append" else data[:8] + new
    else:
        data = data[: 4 * (value % (len(data) // 4 + 1))]
    if len(data) >= 4:
        data[3] = crc8(bytes(data[:3] + data[4:]))
    return bytes(data)


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
    if kind == "moric_field":
        if len(layout.payload) == moric_layout.SIZE:
            _set_field(layout.payload, op[1], op[2])
        return layout.build()
    if kind == "contour":
        # version 2 (several regions): the contour stream follows the parameters
        if layout.payload[:1] == b"\x02" and len(layout.streams) > 1:
            layout.streams[1] = _contour_edit(layout.streams[1], op)
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


def _mutate(original: bytes, ops: list[tuple], fix_crc: bool) -> bytes:
    """The mutations, then the CRC fixed or restored (test_mutated_files spells
    this out itself: its source seeds its derandomised SegPIC cases)."""
    data = original
    for op in ops:
        data = _apply(data, op)
    if fix_crc:  # past the checksum, into the stream table and the decoders
        data = _fix_crc(data)
    elif len(data) >= 4 and any(op[0] not in RAW_OPS for op in ops):
        data = data[:-4] + original[-4:]  # the raw variant: the CRC must catch it
    return data


@dataclass(frozen=True)
class Target:
    """One codec's decode path and its parser alone (what `segpic info` reads)."""

    name: str
    decode: Callable[[bytes], np.ndarray]
    describe: Callable[[bytes], object]
    describe_errors: tuple[type[Exception], ...]  # what the parser may raise
    shape: Callable[[bytes], tuple[int, ...]]  # of a decoded (valid) file


def _segpic_shape(data: bytes) -> tuple[int, ...]:
    header, _, _ = segpic_layout.read_header(data)
    return header.height, header.width, 3


def _moric_shape(data: bytes) -> tuple[int, ...]:
    frame, fields = codecs.describe(data)
    return frame.height, frame.width, 4 if fields["object_only"] else 3


MORIC = Target("moric", codecs.decode, lambda data: codecs.describe(data, details=2),
               (SegpicError,), _moric_shape)


def _decode_checked(target: Target | Codec, data: bytes) -> str:
    """Decode; anything but an image of the header's size or a SegpicError with
    a one-line message fails. A SegPIC Codec (the tiny model) is its own target."""
    if isinstance(target, Codec):
        target = Target("segpic", target.decode, segpic_layout.read_header,
                        (container.ContainerError,), _segpic_shape)
    start = time.process_time()
    with case_memory() as growth:
        try:
            pixels = target.decode(data)
        except SegpicError as exc:
            message = str(exc)
            assert message and "\n" not in message, f"{type(exc).__name__}: {message!r}"
            outcome = type(exc).__name__
            if message.startswith("cannot decode"):  # a library error the codec wrapped
                outcome += f" ({exc})"
        else:
            assert isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8
            assert pixels.shape == target.shape(data)
            outcome = "decoded"
            del pixels
    assert growth() < CASE_MEMORY_LIMIT, (
        f"one case took {growth() / 2**20:.0f} MiB ({outcome})")
    elapsed = time.process_time() - start
    assert elapsed < CASE_CPU_SECONDS, f"one case took {elapsed:.1f} CPU s"
    # the parser alone (segpic info) must agree: a header or one of its errors,
    # and no error for a file that decodes
    try:
        target.describe(data)
    except target.describe_errors:
        assert outcome != "decoded", "a file that decodes fails in the parser"
    OUTCOMES[target.name][outcome] += 1
    return outcome


# ------------------------------------------------------------ memory of a case
_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_bytes(field: str) -> int:
    with open(_STATUS) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise KeyError(field)


def _peak_can_be_reset() -> bool:
    """Linux 4.0+: writing 5 to clear_refs resets the process's peak resident size."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        _status_bytes("VmHWM")
    except (OSError, KeyError):
        return False
    return True


PEAK_RESETTABLE = _peak_can_be_reset()


def _trim_heap() -> None:
    """Give the heap's free pages back (glibc), so that a case's resident growth is
    its own allocations and not pages that an earlier case freed."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def case_memory() -> Iterator[Callable[[], int]]:
    """The memory one case allocates, as a function read after the block: on Linux
    its peak resident size above the resident size at its start (the kernel's peak,
    reset for the case: every allocation counts, torch's and the range coders'
    too); elsewhere the peak of tracemalloc (Python objects and numpy arrays)."""
    growth = 0
    if PEAK_RESETTABLE:
        _trim_heap()
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        before = _status_bytes("VmRSS")
        try:
            yield lambda: growth
        finally:
            growth = _status_bytes("VmHWM") - before
    else:
        tracemalloc.start()
        try:
            yield lambda: growth
        finally:
            growth = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()


def test_case_memory_sees_an_allocation():
    """The measure itself: a 64 MiB array (numpy's allocator, as a decode's) shows,
    and memory held from before the case does not."""
    held = np.ones(16 << 20, np.uint8)
    with case_memory() as growth:
        big = np.ones(64 << 20, np.uint8)
        del big
    # (the kernel's resident counts are approximate by some pages)
    assert 60 << 20 <= growth() < (64 << 20) + CASE_MEMORY_LIMIT // 4
    with case_memory() as growth:
        pass
    assert growth() < 16 << 20
    del held


# ------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def fuzz_outcomes():
    """Print how the cases ended, per codec (pytest -s shows it)."""
    yield
    for name, outcomes in OUTCOMES.items():
        print(f"\n{name} fuzz outcomes: {dict(outcomes)} ({sum(outcomes.values())} cases)")


@_fuzz_settings
@given(which=st.integers(0, 3), ops=st.lists(mutation, min_size=1, max_size=3),
       fix_crc=st.sampled_from([True, True, True, False]))
def test_mutated_files(tiny_codec, seed_files, fuzz_outcomes, which, ops, fix_crc):
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
@given(which=st.integers(0, 4), ops=st.lists(moric_mutation, min_size=1, max_size=3),
       fix_crc=st.sampled_from([True, True, True, False]))
def test_mutated_moric_files(moric_seed_files, fuzz_outcomes, which, ops, fix_crc):
    data = _mutate(moric_seed_files[which], ops, fix_crc)
    outcome = _decode_checked(MORIC, data)
    event(f"{ops[0][0]}{'/' + ops[0][1] if ops[0][0] == 'contour' else ''}: {outcome}")


@_fuzz_settings
@given(body=st.binary(max_size=512), version=st.sampled_from([1, 1, 0, 2, 255]))
def test_random_bytes_after_the_magic(tiny_codec, fuzz_outcomes, body, version):
    data = _fix_crc(container.MAGIC + bytes([version]) + body + b"\0\0\0\0")
    event(_decode_checked(tiny_codec, data))


def _contour_head(regions: int, base: int, count: int) -> bytes:
    """Word 0 (version 1, chains; CRC-8 left 0) and the chain count of a contour stream."""
    return struct.pack("<II", 1 | 1 << 4 | regions << 8 | base << 16, count)


@_fuzz_settings
@given(which=st.integers(0, 4), part=st.sampled_from(["parameters", "contours", "latents"]),
       words_=st.lists(words, max_size=64), count=st.integers(0, 12), base=st.integers(0, 3),
       low=st.sampled_from([-256, -3, -1, 0, 0, 1, 200]), span=st.integers(0, 12))
def test_random_moric_streams(moric_seed_files, fuzz_outcomes, which, part, words_, count,
                              base, low, span):
    """Random words where a MoRIC decoder reads them, past every checksum: the
    parameter stream, the contour chains (after a valid word 0 and chain count)
    or the latent streams of all grids (with a random latent range)."""
    layout = Layout.parse(moric_seed_files[which])
    regions = layout.payload[11]
    random = struct.pack(f"<{len(words_)}I", *words_)
    if part == "parameters":
        layout.streams[0] = random
    elif part == "contours" and regions > 1:
        stream = bytearray(_contour_head(regions, base % regions, count) + random)
        stream[3] = crc8(bytes(stream[:3] + stream[4:]))
        layout.streams[1] = bytes(stream)
    else:
        part = "latents"
        _set_field(layout.payload, "latent_low", (low,))
        _set_field(layout.payload, "latent_high", (min(low + span, 255),))
        for i in range(1, 8):
            layout.streams[-i] = random[4 * i:] if span else b""
    outcome = _decode_checked(MORIC, layout.build())
    event(f"{part}: {outcome}")


def _back_and_forth_contours(regions: int, height: int, width: int, steps: int) -> bytes:
    """A contour stream of one C* chain stepping MAX_STEP pixels diagonally back
    and forth (escapes to the opposite direction): a few bytes, but each step
    crosses up to 46 rows of the polygon fill."""
    moves = [(ESCAPE, 10 if i % 2 == 0 else 2) for i in range(steps)]
    chain = CstarChain(height // 2, width // 2, MAX_STEP, 2, moves)
    writer, methods = Writer(), AdaptiveModel(1, 2)
    writer.uniform(1, regions)
    writer.symbols([CSTAR], [methods.row(0)])
    CstarCoder().write(writer, chain, height, width)
    stream = bytearray(_contour_head(regions, 0, 1) + writer.words().astype("<u4").tobytes())
    stream[3] = crc8(bytes(stream[:3] + stream[4:]))
    return bytes(stream)


def test_moric_contour_fill_is_bounded(moric_seed_files):
    """A hostile contour stream found while writing these tests: a C* chain
    that steps back and forth made the polygon fill's memory and time grow
    with 46 rows per step (a 396-byte stream for a 400x400 image took 16 CPU s
    and 2.2 GB; the default 25 MP limit would have allowed ~350 GB). The
    decoder now refuses chains that cross more rows than a valid stream can,
    before filling them."""
    layout = Layout.parse(moric_seed_files[1])  # 40x32, 3 regions
    layout.streams[1] = _back_and_forth_contours(3, 32, 40, steps=1000)
    data = layout.build()
    with pytest.raises(ContourFormatError, match="too many rows"):
        codecs.decode(data)
    with pytest.raises(ContourFormatError, match="too many rows"):
        codecs.describe(data, details=True)  # segpic info decodes the contours too
    assert _decode_checked(MORIC, data) == "ContourFormatError"


def test_unmutated_seeds_decode(tiny_codec, seed_files, moric_seed_files):
    """The oracle itself: the seed files are valid and decode."""
    for data in seed_files:
        assert _decode_checked(tiny_codec, data) == "decoded"
    for data in moric_seed_files:
        assert _decode_checked(MORIC, data) == "decoded"


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_cli")


def _cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli_main, [str(a) for a in args])
    return result.exit_code, result.stderr


@_fuzz_settings(max_examples=CLI_CASES)
@given(which=st.integers(0, 4), ops=st.lists(moric_mutation, min_size=1, max_size=2))
def test_moric_commands_on_mutated_files(moric_seed_files, cli_folder, which, ops):
    """`segpic decode` and `segpic info` on corrupt MoRIC files: a PNG, or exit
    code 2 with one line on stderr (never an internal error, exit code 1)."""
    data = _mutate(moric_seed_files[which], ops, fix_crc=True)
    spic, png = cli_folder / "in.spic", cli_folder / "out.png"
    spic.write_bytes(data)
    png.unlink(missing_ok=True)
    for args in (("decode", spic, png), ("info", spic), ("info", spic, "--json")):
        code, stderr = _cli(*args)
        assert code in (0, 2), (args[0], code, stderr)
        if code:
            assert stderr.startswith("segpic: error:") and stderr.count("\n") == 1, stderr
            assert "internal error" not in stderr, stderr
        elif args[0] == "decode":
            assert png.exists()
    event("decoded" if png.exists() else "refused")


# ------------------------------------------------- metadata boxes (version 3)
TIFF_HEAD = b"II*\x00\x08\x00\x00\x00"
METADATA_SEED = {"icc": bytes(range(256)), "exif": TIFF_HEAD + b"\x00" * 6,
                 "xmp": "<x>é</x>".encode()}
count_or_length = st.one_of(st.none(), st.none(), st.sampled_from(sorted(VARINT_VALUES)),
                            st.integers(0, 6), st.integers(0, (1 << 21) + 16))
box_content = st.one_of(st.binary(max_size=48),
                        st.binary(max_size=32).map(lambda b: TIFF_HEAD + b),
                        st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")))
metadata_box = st.tuples(st.one_of(st.integers(0, 4), st.just(255)), box_content,
                         count_or_length)


def _number(value: int | str | None, actual: int) -> bytes:
    """A count or length as written: the true one (None), a named varint, or any."""
    if value is None:
        return _varint(actual)
    return VARINT_VALUES[value] if isinstance(value, str) else _varint(value)


def _with_section(data: bytes, section: bytes) -> bytes:
    """A version-2 file made version 3 with this metadata section (CRC recomputed)."""
    layout = Layout.parse(data)
    at = 6 + sum(len(v) for v in layout.varints[:3]) + len(layout.payload)
    return _fix_crc(data[:4] + b"\x03" + data[5:at] + section + data[at:])


@_fuzz_settings  # ~10 ms a case: most end in the frame parser
@given(which=st.integers(0, 3),
       boxes=st.one_of(st.none(), st.lists(metadata_box, max_size=5)),
       ordered=st.booleans(), count=count_or_length,
       ops=st.lists(st.one_of(*raw_mutations), max_size=2),
       fix_crc=st.sampled_from([True, True, True, False]))
def test_mutated_metadata_boxes(tiny_codec, seed_files, fuzz_outcomes, which, boxes, ordered,
                                count, ops, fix_crc):
    """A metadata section in a real SegPIC file: valid, with raw mutations on
    top, or random boxes: decoded, or refused with a one-line error."""
    original = seed_files[which]
    if boxes is None:  # a valid section, so that the raw mutations hit real boxes
        data = container.with_metadata(original, METADATA_SEED)
    else:
        if ordered:  # kinds in the order a reader requires, so that some boxes pass
            boxes = sorted({box[0]: box for box in boxes}.values())
        section = _number(count, len(boxes)) + b"".join(
            bytes([kind]) + _number(length, len(content)) + content
            for kind, content, length in boxes)
        data = _with_section(original, section)
        ops = []  # random boxes are mutation enough
    data = _mutate(data, ops, fix_crc) if ops else data
    outcome = _decode_checked(tiny_codec, data)
    if outcome == "decoded":  # whatever the frame accepted, the PNG writer takes
        frame = container.read_frame(data)
        assert all(container.metadata_problem(k, v) is None for k, v in frame.metadata.items())
    event(f"{'valid' if boxes is None else 'random'} boxes: {outcome}")


@_fuzz_settings(max_examples=max(CASES // 3, 20))
@given(icc=st.binary(min_size=1, max_size=300), exif=st.binary(max_size=64),
       xmp=st.text(min_size=1, max_size=40), kinds=st.sets(st.sampled_from(["icc", "exif",
                                                                          "xmp"])))
def test_png_writer_takes_any_valid_metadata(cli_folder, icc, exif, xmp, kinds):
    """Every box the container accepts goes into the PNG and reads back as it was."""
    xmp_bytes = xmp.encode("utf-8", "surrogatepass")
    metadata = {k: v for k, v in (("icc", icc), ("exif", b"MM\x00*" + exif),
                                  ("xmp", xmp_bytes)) if k in kinds}
    if any(container.metadata_problem(k, v) for k, v in metadata.items()):
        return  # a lone surrogate is not UTF-8: the container refuses it
    png = cli_folder / "meta.png"
    save_png(np.zeros((2, 3, 3), np.uint8), png, metadata)
    from PIL import Image

    with Image.open(png) as back:
        back.load()
        assert back.info.get("icc_profile") == metadata.get("icc")
        assert back.info.get("exif", b"").removeprefix(b"Exif\x00\x00") == \
            metadata.get("exif", b"")
        assert back.info.get("XML:com.adobe.xmp", "").encode() == metadata.get("xmp", b"")

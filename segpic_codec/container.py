"""The .spic container, format version 1 (byte layout in docs/format.md).

    magic "SPIC" | version | model id | weights id (4) | quality | grid |
    width-1, height-1, stream count, stream lengths (varints) |
    streams... | CRC-32 (little endian) over everything before it

Stream lengths are counted in 32-bit words (range-coded streams are whole words);
the last stream's length is implied by the file size. Streams, in order: the
prototype streams p' and p, the z stream, then one stream per y slice.

`unpack` checks every field against hard limits and the real file size before
anything is allocated, and raises `ContainerError` with a one-line message.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .config import CONFIGS, ModelConfig, max_pixels, padded_size
from .errors import SegpicError
from .model import CodedStreams

MAGIC = b"SPIC"
VERSION = 1
MODEL_IDS = {"small": 1, "segpic": 2, "tiny": 3}
MODEL_NAMES = {v: k for k, v in MODEL_IDS.items()}
QUALITY_STEPS = 40  # quality is stored as round(quality * 40) in one byte
MAX_GRID = 8
MAX_DIMENSION = 1 << 16
MAX_VARINT_BYTES = 5
PROTOTYPE_STREAMS = 2


class ContainerError(SegpicError, ValueError):
    """A .spic file is malformed, truncated, corrupted or from an unknown version."""


@dataclass(frozen=True)
class Header:
    model: str
    weights_id: str  # 8 hex digits
    quality: float
    width: int
    height: int
    grid: int


def format_pixels(count: int) -> str:
    """A pixel count for messages: "64.0 MP", or exact below one megapixel (a
    lowered SEGPIC_MAX_PIXELS would otherwise read "0.0 MP")."""
    return f"{count / 1e6:.1f} MP" if count >= 1_000_000 else f"{count} pixels"


def quantize_quality(quality: float) -> float:
    return round(quality * QUALITY_STEPS) / QUALITY_STEPS


def expected_streams(config: ModelConfig) -> int:
    return PROTOTYPE_STREAMS + 1 + config.num_slices


def stream_names(count: int) -> list[str]:
    """Names of the streams in file order."""
    names = ["p_transform", "p_entropy", "z"]
    return names + [f"y{i}" for i in range(count - len(names))]


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data = data
        self.pos = 0
        self.end = end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise ContainerError(f"truncated .spic file (ends inside the {what})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self, what: str) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value
        raise ContainerError(f"corrupt .spic file (overlong number in the {what})")


def pack(header: Header, streams: CodedStreams) -> bytes:
    parts = [*streams.prototype_streams, streams.z_stream, *streams.y_streams]
    for part in parts:
        if len(part) % 4:
            raise ValueError("coded streams must be whole 32-bit words")
    q = round(header.quality * QUALITY_STEPS)
    if not 0 < q < 256:
        raise ValueError(f"quality {header.quality} cannot be stored")
    out = bytearray(MAGIC)
    out += struct.pack("<BB4sBB", VERSION, MODEL_IDS[header.model],
                       bytes.fromhex(header.weights_id), q, header.grid)
    out += _varint(header.width - 1) + _varint(header.height - 1) + _varint(len(parts))
    for part in parts[:-1]:
        out += _varint(len(part) // 4)
    for part in parts:
        out += part
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def read_header(data: bytes) -> tuple[Header, list[int], int]:
    """Parse and check the header -> (header, stream byte lengths, payload offset).
    Verifies the CRC; does not need the model."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ContainerError("not a .spic file (bad magic bytes)")
    if len(data) < len(MAGIC) + 1:
        raise ContainerError("truncated .spic file (ends inside the header)")
    version = data[len(MAGIC)]
    if version != VERSION:
        if version > VERSION:
            raise ContainerError(f"file uses .spic format version {version}; this segpic "
                                 f"reads version {VERSION} (upgrade segpic)")
        raise ContainerError(f"unknown .spic format version {version}")
    if len(data) < len(MAGIC) + 13:
        raise ContainerError("truncated .spic file (ends inside the header)")
    reader = _Reader(data, len(data) - 4)
    reader.take(len(MAGIC) + 1, "header")
    model_id, weights, q, grid = struct.unpack("<B4sBB", reader.take(7, "header"))
    if model_id not in MODEL_NAMES:
        raise ContainerError(f"unknown model id {model_id} in .spic header")
    model = MODEL_NAMES[model_id]
    config = CONFIGS[model]
    if not QUALITY_STEPS <= q <= QUALITY_STEPS * config.num_qualities:
        raise ContainerError(f"invalid quality {q / QUALITY_STEPS} in .spic header")
    if not 1 <= grid <= MAX_GRID:
        raise ContainerError(f"invalid grid size {grid} in .spic header")
    width = reader.varint("header") + 1
    height = reader.varint("header") + 1
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > max_pixels():
        raise ContainerError(f"refusing {width}x{height} image: over the size limit "
                             f"({format_pixels(max_pixels())}, sides up to {MAX_DIMENSION}; "
                             "set SEGPIC_MAX_PIXELS to raise it)")
    count = reader.varint("stream table")
    if count != expected_streams(config):
        raise ContainerError(f"corrupt .spic file: {count} streams, model {model!r} "
                             f"has {expected_streams(config)}")
    lengths = []
    for _ in range(count - 1):
        words = reader.varint("stream table")
        lengths.append(words * 4)
        if reader.pos + sum(lengths) > reader.end:
            raise ContainerError("truncated .spic file (shorter than its stream table says)")
    last = reader.end - reader.pos - sum(lengths)
    if last < 0 or last % 4:
        raise ContainerError("truncated or corrupted .spic file (stream sizes do not add up)")
    lengths.append(last)
    stored_crc = struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(data[:-4]) != stored_crc:
        raise ContainerError("corrupted .spic file (checksum mismatch)")
    header = Header(model=model, weights_id=weights.hex(), quality=q / QUALITY_STEPS,
                    width=width, height=height, grid=grid)
    return header, lengths, reader.pos


def unpack(data: bytes) -> tuple[Header, CodedStreams]:
    header, lengths, offset = read_header(data)
    streams = []
    for n in lengths:
        streams.append(bytes(data[offset : offset + n]))
        offset += n
    ph, pw = padded_size(header.height, header.width)
    coded = CodedStreams(
        prototype_streams=streams[:PROTOTYPE_STREAMS],
        z_stream=streams[PROTOTYPE_STREAMS],
        y_streams=streams[PROTOTYPE_STREAMS + 1 :],
        latent_height=ph // 16,
        latent_width=pw // 16,
    )
    return header, coded

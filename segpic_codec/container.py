"""The .spic container frame: codec-neutral (byte layout in docs/format.md).

Version 2 (written for images without metadata):

    magic "SPIC" | version 2 | codec id | width-1, height-1 (varints) |
    payload length (varint) | payload | 2 x stream count + aligned (varint) |
    stream lengths (varints) | streams... | CRC-32 (little endian) over everything before it

The payload is a small codec-specific header that only the codec parses. When
every stream is whole 32-bit words (range-coded streams are), the aligned bit is
set and lengths count words, which keeps them one byte shorter; otherwise they
count bytes. The last stream's length is implied by the file size.

Version 3 is version 2 with a metadata section (ICC profile, EXIF, XMP) between
the payload and the stream count. It is written only when an image has metadata,
so a file without any stays byte for byte what version 2 wrote:

    ... payload | box count (varint, 1..3) | per box: kind (1 byte), length
    (varint), bytes | 2 x stream count + aligned | ...

Version 1 (read only) was SegPIC's own layout: its 7 header bytes after the
version byte (model id, weights id, quality, grid) are exactly SegPIC's version-2
payload, so a version-1 file reads as a SegPIC frame with that payload.

`read_frame` checks every field against hard limits and the real file size before
anything is allocated, and raises `ContainerError` with a one-line message. This
module imports no codec and no torch (the codec ids come from `registry`, which
is data only): `segpic info` runs on it alone.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import SegpicError
from .limits import MAX_METADATA_BOX, MAX_METADATA_TOTAL, too_large
from .registry import CODECS

MAGIC = b"SPIC"
VERSION = 2  # written for files without metadata
METADATA_VERSION = 3  # written for files with metadata boxes
READ_VERSIONS = (1, VERSION, METADATA_VERSION)
CODEC_IDS = {entry.name: entry.id for entry in CODECS.values()}  # one line per codec there
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}
MAX_PAYLOAD = 4096  # bytes of codec header
MAX_STREAMS = 1024
MAX_VARINT_BYTES = 5
V1_PAYLOAD = 7  # model id, weights id (4), quality, grid
# Metadata box kinds: id in the file -> name. Boxes are written in id order,
# each kind at most once, so one image's metadata always gives the same bytes.
METADATA_KINDS = {1: "icc", 2: "exif", 3: "xmp"}
METADATA_IDS = {v: k for k, v in METADATA_KINDS.items()}
METADATA_LABELS = {"icc": "ICC profile", "exif": "EXIF", "xmp": "XMP"}
TIFF_HEADERS = (b"II*\x00", b"MM\x00*")  # EXIF is stored as a bare TIFF structure


class ContainerError(SegpicError, ValueError):
    """A .spic file is malformed, truncated, corrupted or from an unknown version."""


@dataclass(frozen=True)
class FrameHeader:
    """Everything before the streams, checked; `stream_lengths` in bytes."""

    version: int
    codec: str
    width: int
    height: int
    payload: bytes
    stream_lengths: list[int]
    offset: int  # where the first stream starts
    # kind ("icc", "exif", "xmp") -> bytes, in box order; empty below version 3
    metadata: dict[str, bytes] = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def varint(value: int) -> bytes:
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


def metadata_problem(kind: str, data: bytes) -> str | None:
    """Why one metadata box cannot be stored or read, or None if it is fine. The
    content checks are the ones a PNG writer needs (EXIF is a TIFF structure, XMP
    is UTF-8 text); an ICC profile is passed on as it is."""
    label = METADATA_LABELS.get(kind, kind)
    if kind not in METADATA_IDS:
        return f"unknown metadata kind {kind!r}"
    if not data:
        return f"empty {label}"
    if len(data) > MAX_METADATA_BOX:
        return f"{label} of {len(data)} bytes is over the limit of {MAX_METADATA_BOX} bytes"
    if kind == "exif" and data[:4] not in TIFF_HEADERS:
        return "EXIF without a TIFF header"
    if kind == "xmp":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "XMP that is not UTF-8 text"
    return None


def _pack_metadata(metadata: Mapping[str, bytes]) -> bytes:
    out = bytearray(varint(len(metadata)))
    total = 0
    for kind in sorted(metadata, key=lambda k: METADATA_IDS.get(k, 0)):
        data = bytes(metadata[kind])
        problem = metadata_problem(kind, data)
        if problem:
            raise ContainerError(f"cannot store metadata: {problem}")
        total += len(data)
        out += bytes([METADATA_IDS[kind]]) + varint(len(data)) + data
    if total > MAX_METADATA_TOTAL:
        raise ContainerError(f"cannot store metadata: {total} bytes in all, over the limit "
                             f"of {MAX_METADATA_TOTAL} bytes")
    return bytes(out)


def pack(codec: str, width: int, height: int, payload: bytes, streams: list[bytes],
         metadata: Mapping[str, bytes] | None = None) -> bytes:
    """One image's frame; version 3 with `metadata` (kind -> bytes), else version 2."""
    if codec not in CODEC_IDS:
        raise ValueError(f"unknown codec {codec!r}")
    if not streams or len(streams) > MAX_STREAMS or len(payload) > MAX_PAYLOAD:
        raise ValueError("stream count or payload size out of range")
    aligned = all(len(part) % 4 == 0 for part in streams)
    unit = 4 if aligned else 1
    out = bytearray(MAGIC)
    out += struct.pack("<BB", METADATA_VERSION if metadata else VERSION, CODEC_IDS[codec])
    out += varint(width - 1) + varint(height - 1)
    out += varint(len(payload)) + payload
    if metadata:
        out += _pack_metadata(metadata)
    out += varint(2 * len(streams) + aligned)
    for part in streams[:-1]:
        out += varint(len(part) // unit)
    for part in streams:
        out += part
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def read_frame(data: bytes) -> FrameHeader:
    """Parse and check the frame (every version), including the CRC. Needs no codec."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ContainerError("not a .spic file (bad magic bytes)")
    if len(data) < len(MAGIC) + 1:
        raise ContainerError("truncated .spic file (ends inside the header)")
    version = data[len(MAGIC)]
    if version not in READ_VERSIONS:
        if version > max(READ_VERSIONS):
            raise ContainerError(f"file uses .spic format version {version}; this segpic "
                                 f"reads versions 1 to {max(READ_VERSIONS)} (upgrade segpic)")
        raise ContainerError(f"unknown .spic format version {version}")
    if len(data) < len(MAGIC) + 9:
        raise ContainerError("truncated .spic file (ends inside the header)")
    reader = _Reader(data, len(data) - 4)
    reader.take(len(MAGIC) + 1, "header")
    if version == 1:
        codec = "segpic"
        payload = reader.take(V1_PAYLOAD, "header")
    else:
        codec_id = reader.take(1, "header")[0]
        if codec_id not in CODEC_NAMES:
            raise ContainerError(f"unknown codec id {codec_id} in .spic header "
                                 "(made by a newer segpic?)")
        codec = CODEC_NAMES[codec_id]
    width = reader.varint("header") + 1
    height = reader.varint("header") + 1
    reason = too_large(width, height)
    if reason:
        raise ContainerError(reason)
    if version != 1:
        size = reader.varint("header")
        if size > MAX_PAYLOAD:
            raise ContainerError(f"corrupt .spic file ({size}-byte codec header)")
        payload = reader.take(size, "codec header")
    metadata = _read_metadata(reader) if version == METADATA_VERSION else {}
    count = reader.varint("stream table")
    unit = 4  # version 1: always 32-bit words
    if version != 1:
        count, unit = count >> 1, (4 if count & 1 else 1)
    if not 1 <= count <= MAX_STREAMS:
        raise ContainerError(f"corrupt .spic file ({count} streams)")
    lengths = []
    for _ in range(count - 1):
        lengths.append(reader.varint("stream table") * unit)
        if reader.pos + sum(lengths) > reader.end:
            raise ContainerError("truncated .spic file (shorter than its stream table says)")
    last = reader.end - reader.pos - sum(lengths)
    if last < 0 or last % unit:
        raise ContainerError("truncated or corrupted .spic file (stream sizes do not add up)")
    lengths.append(last)
    stored_crc = struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(data[:-4]) != stored_crc:
        raise ContainerError("corrupted .spic file (checksum mismatch)")
    return FrameHeader(version, codec, width, height, bytes(payload), lengths, reader.pos,
                       metadata)


def _read_metadata(reader: _Reader) -> dict[str, bytes]:
    """The boxes of a version-3 frame; sizes are checked before anything is sliced."""
    count = reader.varint("metadata")
    if not 1 <= count <= len(METADATA_KINDS):
        raise ContainerError(f"corrupt .spic file ({count} metadata boxes)")
    boxes: dict[str, bytes] = {}
    previous, total = 0, 0
    for _ in range(count):
        kind_id = reader.take(1, "metadata")[0]
        if kind_id not in METADATA_KINDS:
            raise ContainerError(f"unknown metadata box kind {kind_id} in .spic file "
                                 "(made by a newer segpic?)")
        if kind_id <= previous:
            raise ContainerError("corrupt .spic file (metadata boxes repeated or out of order)")
        previous, kind = kind_id, METADATA_KINDS[kind_id]
        size = reader.varint("metadata")
        total += size
        if size > MAX_METADATA_BOX or total > MAX_METADATA_TOTAL:
            raise ContainerError(f"corrupt .spic file ({size}-byte {METADATA_LABELS[kind]} "
                                 f"box; at most {MAX_METADATA_BOX} bytes per box and "
                                 f"{MAX_METADATA_TOTAL} in all)")
        box = bytes(reader.take(size, "metadata"))
        problem = metadata_problem(kind, box)
        if problem:
            raise ContainerError(f"corrupt .spic file ({problem})")
        boxes[kind] = box
    return boxes


def split_streams(data: bytes, frame: FrameHeader) -> list[bytes]:
    """The streams of a checked frame, in file order."""
    streams, offset = [], frame.offset
    for n in frame.stream_lengths:
        streams.append(bytes(data[offset : offset + n]))
        offset += n
    return streams


def with_metadata(data: bytes, metadata: Mapping[str, bytes] | None) -> bytes:
    """The same coded image with its metadata replaced by `metadata` (none: a
    version-2 file), for a file already written: an encode packs its metadata with
    the frame (`codecs.CodedImage.frame`). A version-1 file comes back as version 2
    or 3."""
    frame = read_frame(data)
    if not metadata and frame.version == VERSION:
        return data
    return pack(frame.codec, frame.width, frame.height, frame.payload,
                split_streams(data, frame), metadata=metadata)

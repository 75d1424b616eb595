"""SegPIC's part of a .spic file: its codec header (the frame's payload) and the
order of its streams. Imports no torch, so `segpic info` stays fast.

    payload: model id | weights id (4) | quality | grid | flags   (8 bytes)
    streams: p_transform, p_entropy, z, y0 .. y{num_slices-1}

flags bit 0 (FLAG_EXACT_ENTROPY): the entropy parameters come from the exact
fixed-point path (`networks/entropy_paths.py`), the same bits on every machine.
Files without the flags byte (7-byte payloads, every file before it) use the
float64 path. Other flag bits are refused, so a file from a later version is
not misread.

Version-1 files carried these same 7 bytes right after the version byte, so they
read through the same path (see `segpic_codec.container`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .. import container
from ..container import ContainerError
from .config import CONFIGS, ModelConfig, padded_size

MODEL_IDS = {"small": 1, "segpic": 2, "tiny": 3}
MODEL_NAMES = {v: k for k, v in MODEL_IDS.items()}
QUALITY_STEPS = 40  # quality is stored as round(quality * 40) in one byte
MAX_GRID = 8
PROTOTYPE_STREAMS = 2
FLAGS_PAYLOAD = container.V1_PAYLOAD + 1  # the payload with its flags byte
FLAG_EXACT_ENTROPY = 1


@dataclass(frozen=True)
class Header:
    model: str
    weights_id: str  # 8 hex digits
    quality: float
    width: int
    height: int
    grid: int
    exact_entropy: bool = False


@dataclass
class CodedStreams:
    """The coded payload of one image, before it is put in a container."""

    prototype_streams: list[bytes]  # [p' (transform prototypes), p (entropy prototypes)]
    z_stream: bytes
    y_streams: list[bytes]
    latent_height: int  # of y, in latent pixels (padded image / 16)
    latent_width: int
    # entropy parameters from the exact path (FLAG_EXACT_ENTROPY), not float64
    exact_entropy: bool = False


def quantize_quality(quality: float) -> float:
    return round(quality * QUALITY_STEPS) / QUALITY_STEPS


def expected_streams(config: ModelConfig) -> int:
    return PROTOTYPE_STREAMS + 1 + config.num_slices


def stream_names(count: int) -> list[str]:
    """Names of the streams in file order."""
    names = ["p_transform", "p_entropy", "z"]
    return names + [f"y{i}" for i in range(count - len(names))]


def pack_payload(header: Header) -> bytes:
    """SegPIC's codec header; the frame around it is packed by `segpic_codec.codecs`
    (the width and height of `header` go there)."""
    q = round(header.quality * QUALITY_STEPS)
    if not 0 < q < 256:
        raise ValueError(f"quality {header.quality} cannot be stored")
    payload = struct.pack("<B4sBB", MODEL_IDS[header.model],
                          bytes.fromhex(header.weights_id), q, header.grid)
    if header.exact_entropy:
        payload += bytes([FLAG_EXACT_ENTROPY])
    return payload


def stream_list(streams: CodedStreams) -> list[bytes]:
    """The streams in file order (`stream_names`)."""
    return [*streams.prototype_streams, streams.z_stream, *streams.y_streams]


def parse_header(frame: container.FrameHeader) -> Header:
    """Check SegPIC's payload and stream count against the model it names."""
    if len(frame.payload) not in (container.V1_PAYLOAD, FLAGS_PAYLOAD):
        raise ContainerError(f"corrupt .spic file ({len(frame.payload)}-byte SegPIC header)")
    model_id, weights, q, grid = struct.unpack("<B4sBB", frame.payload[:container.V1_PAYLOAD])
    flags = frame.payload[container.V1_PAYLOAD] if len(frame.payload) == FLAGS_PAYLOAD else 0
    if flags & ~FLAG_EXACT_ENTROPY:
        raise ContainerError(f"unknown SegPIC flags {flags:#04x} in .spic header "
                             "(a file from a later version?)")
    if model_id not in MODEL_NAMES:
        raise ContainerError(f"unknown model id {model_id} in .spic header")
    model = MODEL_NAMES[model_id]
    config = CONFIGS[model]
    if not QUALITY_STEPS <= q <= QUALITY_STEPS * config.num_qualities:
        raise ContainerError(f"invalid quality {q / QUALITY_STEPS} in .spic header")
    if not 1 <= grid <= MAX_GRID:
        raise ContainerError(f"invalid grid size {grid} in .spic header")
    count = len(frame.stream_lengths)
    if count != expected_streams(config):
        raise ContainerError(f"corrupt .spic file: {count} streams, model {model!r} "
                             f"has {expected_streams(config)}")
    return Header(model=model, weights_id=weights.hex(), quality=q / QUALITY_STEPS,
                  width=frame.width, height=frame.height, grid=grid,
                  exact_entropy=bool(flags & FLAG_EXACT_ENTROPY))


def read_header(data: bytes) -> tuple[Header, list[int], int]:
    """Parse and check the header -> (header, stream byte lengths, payload offset).
    Verifies the CRC; does not need the model."""
    frame = container.read_frame(data)
    if frame.codec != "segpic":
        raise ContainerError(f"not a SegPIC file (codec {frame.codec!r})")
    return parse_header(frame), frame.stream_lengths, frame.offset


def unpack(data: bytes) -> tuple[Header, CodedStreams]:
    frame = container.read_frame(data)
    if frame.codec != "segpic":
        raise ContainerError(f"not a SegPIC file (codec {frame.codec!r})")
    header = parse_header(frame)
    streams = container.split_streams(data, frame)
    ph, pw = padded_size(header.height, header.width)
    coded = CodedStreams(
        prototype_streams=streams[:PROTOTYPE_STREAMS],
        z_stream=streams[PROTOTYPE_STREAMS],
        y_streams=streams[PROTOTYPE_STREAMS + 1 :],
        latent_height=ph // 16,
        latent_width=pw // 16,
        exact_entropy=header.exact_entropy,
    )
    return header, coded


def describe_frame(frame: container.FrameHeader) -> dict:
    """The SegPIC fields of `segpic info`."""
    header = parse_header(frame)
    return {"model": header.model, "weights_id": header.weights_id,
            "quality": header.quality, "grid": header.grid,
            "exact_entropy": header.exact_entropy,
            "stream_names": stream_names(len(frame.stream_lengths))}

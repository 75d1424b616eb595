"""MoRIC's codec header (the container frame's payload) and stream order.
Imports no torch, so `segpic info` stays fast.

    payload (big-endian, 32 bytes):
        version u8 | quality*1000 u16 | preset u8 | steps u32 | flags u8
        | GMN features u8 | activation u8 | regions u8
          (flags: bit 0 interrupted, bit 1 object only: region 0 not coded,
           bit 2 parameters range coded, bit 3 parameters coded as
           differences from the shipped network prior `PRIOR_ID` of this
           GMN width and activation, `bitstream.param_prior`; only with bit 2,
           bit 4 integer synthesis: the upsampling and synthesis run in exact
           fixed point, `decoder.layers`; without it, in float32)
        | latent low i16 | latent high i16
        | per (module, kind) in arm, upsampling, gmn, lsn x weight, bias:
          step exponent u8, model u8 (with flag bit 2 the Laplace scale index
          of `param_stream`, without it the order of the exp-Golomb code that
          files written before range-coded parameters use)
    streams: parameters, then latents of grid 0 (full resolution) .. grid 6

Version 1 codes one region. Version 2 (written when there are 2..16 regions)
has the same fields and one more stream after the parameters: the region
contours (`contours.stream`); the parameters then hold one LSN per region, in
region order. One-region files are still written as version 1.

The image size is not stored: the container holds width and height.
The constants these fields use, and the `Header` record, live in `file_format`.
"""

from __future__ import annotations

import struct

from .errors import MoricFormatError
from .file_format import (
    ACTIVATIONS,
    FORMAT_VERSION,
    KINDS,
    MAX_ABS_LATENT,
    MAX_CODED_REGIONS,
    MAX_EXPGOLOMB_ORDER,
    MAX_EXPONENT,
    MAX_FEATURES,
    MODULES,
    NUM_GRIDS,
    NUM_SCALES,
    PRESET_NAMES,
    PRIOR_ID,
    SINGLE_REGION_VERSION,
    Header,
)

_FIXED = struct.Struct(">BHBIBBBBhh")
SIZE = _FIXED.size + 2 * len(MODULES) * len(KINDS)


def pack(header: Header) -> bytes:
    preset = header.preset if header.preset in PRESET_NAMES else "custom"
    fixed = _FIXED.pack(header.version, round(header.quality * 1000), PRESET_NAMES.index(preset),
                        min(header.steps, 2**32 - 1),
                        int(header.interrupted) | int(header.object_only) << 1
                        | int(header.range_coded) << 2 | int(header.prior_coded) << 3
                        | int(header.integer_synthesis) << 4,
                        header.features,
                        ACTIVATIONS.index(header.activation), header.regions,
                        header.latent_low, header.latent_high)
    tail = bytes(v for m in MODULES for k in KINDS for v in header.coding[(m, k)])
    return fixed + tail


def unpack(payload: bytes) -> Header:
    """Parse and validate a payload; MoricFormatError on anything unexpected."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise MoricFormatError("MoRIC payload must be bytes")
    payload = bytes(payload)
    if len(payload) < 1:
        raise MoricFormatError("empty MoRIC header")
    if payload[0] not in (SINGLE_REGION_VERSION, FORMAT_VERSION):
        raise MoricFormatError(f"unsupported MoRIC format version {payload[0]} "
                               f"(this build reads 1 to {FORMAT_VERSION})")
    if len(payload) != SIZE:
        raise MoricFormatError(f"corrupt MoRIC header ({len(payload)} bytes, expected {SIZE})")
    (version, quality, preset, steps, flags, features, activation, regions, low,
     high) = _FIXED.unpack_from(payload)
    tail = payload[_FIXED.size:]
    checks = [
        (1000 <= quality <= 6000, f"quality {quality / 1000}"),
        (preset < len(PRESET_NAMES), f"preset id {preset}"),
        (flags <= 31 and not (flags & 2 and version == SINGLE_REGION_VERSION)
         and not (flags & 8 and not flags & 4),
         f"flags {flags}"),
        (1 <= features <= MAX_FEATURES, f"{features} GMN features"),
        (activation < len(ACTIVATIONS), f"activation id {activation}"),
        (regions == 1 if version == SINGLE_REGION_VERSION else 2 <= regions <= MAX_CODED_REGIONS,
         f"{regions} regions for version {version}"),
        (-MAX_ABS_LATENT <= low <= high < MAX_ABS_LATENT, f"latent range [{low}, {high}]"),
        (all(e <= MAX_EXPONENT for e in tail[0::2]), "parameter quantisation step"),
        (all(m < NUM_SCALES for m in tail[1::2]) if flags & 4 else
         all(m <= MAX_EXPGOLOMB_ORDER for m in tail[1::2]), "parameter model"),
    ]
    for ok, what in checks:
        if not ok:
            raise MoricFormatError(f"corrupt MoRIC header (bad {what})")
    pairs = iter(zip(tail[0::2], tail[1::2], strict=True))
    coding = {(m, k): next(pairs) for m in MODULES for k in KINDS}
    return Header(quality / 1000, PRESET_NAMES[preset], steps, bool(flags & 1), features,
                  ACTIVATIONS[activation], regions, low, high, coding, bool(flags & 2),
                  bool(flags & 4), bool(flags & 8), bool(flags & 16))


def describe(payload: bytes) -> dict:
    """Header fields for `segpic info`."""
    h = unpack(payload)
    return {
        "format_version": h.version,
        "quality": h.quality,
        "preset": h.preset,
        "steps": h.steps,
        "interrupted": h.interrupted,
        "regions": h.regions,
        "object_only": h.object_only,
        "integer_synthesis": h.integer_synthesis,
        "synthesis_features": h.features,
        "activation": h.activation,
        "network_prior": PRIOR_ID if h.prior_coded else None,
        "latent_range": [h.latent_low, h.latent_high],
    }


def stream_names(payload: bytes, count: int) -> list[str]:
    """Names of the streams in file order; checks the count against the header."""
    h = unpack(payload)
    if count != h.num_streams:
        raise MoricFormatError(f"corrupt MoRIC file ({count} streams, expected {h.num_streams})")
    return ["parameters"] + ["contours"] * (h.regions > 1) \
        + [f"latents 1/{2**i}" for i in range(NUM_GRIDS)]


def describe_details(frame, streams: list[bytes], level: int = 1) -> dict:
    """The per-region table of `segpic info` (decodes the contours, and at
    level 2 the latents; no torch)."""
    from .bitstream.region_info import describe_regions

    header = unpack(frame.payload)
    return {"region_table": describe_regions(header, streams, frame.width, frame.height,
                                             latents=level >= 2)}


def describe_frame(frame) -> dict:
    """What `segpic info` shows of a MoRIC file (`segpic_codec.codecs.describe`):
    its header fields and stream names, checked against the frame's stream count."""
    fields = describe(frame.payload)
    fields["moric_format"] = fields.pop("format_version")  # the frame has its own
    fields["stream_names"] = stream_names(frame.payload, len(frame.stream_lengths))
    return fields

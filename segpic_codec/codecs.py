"""The codecs segpic knows, and the codec-neutral API over them.

    from segpic_codec import codecs
    result = codecs.encode(pixels, codec="segpic", quality=4)
    pixels = codecs.decode(result.data)        # dispatches on the codec id in the file
    frame, fields = codecs.describe(result.data)  # no torch, no weights

A codec is a subpackage with two modules named here: a torch-free `layout`
(parses its header payload: `describe_frame(frame) -> dict`, with `stream_names`) and a
`frontend` (`load_encoder(...)`, `load_decoder(frame, ...)`). Adding a codec is a
folder plus one line in `CODECS` (and its id in `container.CODEC_IDS`). Nothing
here imports a codec until it is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from . import container
from .errors import CodecError

if TYPE_CHECKING:  # numpy stays unimported for `segpic info` (its start-up time)
    import numpy as np


@dataclass(frozen=True)
class CodecEntry:
    name: str
    summary: str
    package: str  # holds `layout` and `frontend`

    def layout(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.layout")

    def frontend(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.frontend")


CODECS: dict[str, CodecEntry] = {
    entry.name: entry for entry in (
        CodecEntry("segpic", "SegPIC (ECCV 2024): amortised, trained weights, fast",
                   "segpic_codec.segpic"),
        CodecEntry("moric", "MoRIC (NeurIPS 2025): overfitted per image, no weights, slow "
                   "to encode", "segpic_codec.moric"),
    )
}
DEFAULT_CODEC = "segpic"


@dataclass
class EncodeResult:
    data: bytes
    reconstruction: np.ndarray | None  # (H, W, 3) uint8, what the decoder will output
    quality: float
    width: int
    height: int
    notes: tuple[str, ...] = ()  # what a user should be told (e.g. "stopped early")

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.width * self.height)


class Encoder(Protocol):
    def encode(self, pixels: np.ndarray, quality: float | None = None,
               bpp: float | None = None, reconstruct: bool = True,
               **options: Any) -> EncodeResult: ...


class Decoder(Protocol):
    def decode(self, data: bytes) -> np.ndarray: ...


def get(name: str) -> CodecEntry:
    try:
        return CODECS[name]
    except KeyError:
        raise CodecError(f"unknown codec {name!r}; choose one of: "
                         f"{', '.join(sorted(CODECS))}") from None


def describe(data: bytes, details: int = 0) -> tuple[container.FrameHeader, dict]:
    """Check a file's frame and its codec's header -> (frame, the codec's fields).
    details: 1 (or True) also what a codec can tell cheaply from its streams,
    2 also what takes entropy decoding (`layout.describe_details(frame, streams,
    level)`, if the codec has it; e.g. MoRIC's regions, and at 2 their shares
    of the latent bits)."""
    frame = container.read_frame(data)
    layout = get(frame.codec).layout()
    fields = layout.describe_frame(frame)
    if details and hasattr(layout, "describe_details"):
        fields.update(layout.describe_details(frame, container.split_streams(data, frame),
                                              int(details)))
    return frame, fields


def load_encoder(codec: str = DEFAULT_CODEC, **options: Any) -> Encoder:
    """An encoder of `codec`; `options` are its own (weights, model, device, ...)."""
    return get(codec).frontend().load_encoder(**options)


def load_decoder(frame: container.FrameHeader, weights: str | Path | None = None,
                 device: str = "auto", **options: Any) -> Decoder:
    """A decoder for files like `frame` (its codec, its model). `options`: those the
    codec's frontend names in DECODER_OPTIONS (segpic: exact); None means the default."""
    frontend = get(frame.codec).frontend()
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(getattr(frontend, "DECODER_OPTIONS", ())))
    if unknown:
        raise CodecError(f"a {frame.codec} decoder takes no option {', '.join(unknown)}")
    return frontend.load_decoder(frame, weights=weights, device=device, **given)


def encode(pixels: np.ndarray, codec: str = DEFAULT_CODEC, quality: float | None = None,
           bpp: float | None = None, **options: Any) -> EncodeResult:
    """Encode RGB pixels with `codec`; `options` are the codec's own."""
    loader, rest = split_options(codec, options)
    return load_encoder(codec, **loader).encode(pixels, quality=quality, bpp=bpp, **rest)


def split_options(codec: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the options that pick the encoder, for `load_encoder`; the rest, for each
    encode call). A codec's frontend names its loader options in LOADER_OPTIONS."""
    loader_keys = set(getattr(get(codec).frontend(), "LOADER_OPTIONS",
                              ("weights", "model", "device")))
    loader = {k: v for k, v in options.items() if k in loader_keys}
    rest = {k: v for k, v in options.items() if k not in loader_keys}
    return loader, rest


def decode(data: bytes, weights: str | Path | None = None, device: str = "auto",
           **options: Any) -> np.ndarray:
    """.spic bytes of any codec -> (H, W, 3) uint8 pixels; `options` as `load_decoder`."""
    frame = container.read_frame(data)
    return load_decoder(frame, weights=weights, device=device, **options).decode(data)

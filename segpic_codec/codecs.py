"""The codecs segpic knows, and the codec-neutral API over them.

    from segpic_codec import codecs
    result = codecs.encode(pixels, codec="segpic", quality=4)
    pixels = codecs.decode(result.data)        # dispatches on the codec id in the file
    frame, fields = codecs.describe(result.data)  # no torch, no weights

A codec is a subpackage with three modules named here, imported when used:
- `options` (torch-free): `OPTIONS`, its declared options (`segpic_codec.options`);
- `layout` (torch-free): `describe_frame(frame) -> dict` (with `stream_names`);
- `frontend`: `load_encoder(device, **loader options)`, an object whose
  `encode_streams(pixels, quality, bpp, reconstruct, **encode options)` returns a
  `CodedImage` (its payload and streams), and `load_decoder(frame, weights, device,
  **decoder options)`.
This module packs the frame and the metadata, once (`CodedImage.frame`). Adding a
codec is its folder plus one line in `registry.CODECS` (its name, frame id and
package).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import container
from .errors import CodecError
from .extras import needs_encode_install
from .options import COMMON
from .registry import CODECS, DEFAULT_CODEC, CodecEntry

if TYPE_CHECKING:  # numpy stays unimported for `segpic info` (its start-up time)
    import numpy as np

    from .targets import Target


@dataclass
class CodedImage:
    """What a codec's encoder returns: its header payload and its streams. The
    frame around them (and the metadata) is packed here, by `frame`."""

    codec: str
    width: int
    height: int
    payload: bytes
    streams: list[bytes]
    quality: float
    reconstruction: np.ndarray | None = None  # (H, W, 3) uint8, what the decoder outputs
    notes: tuple[str, ...] = ()  # what a user should be told (e.g. "stopped early")
    # a target met in this one encode (`steered_targets`): whether it was, and
    # what was reached (the file's bytes, or its PSNR in dB)
    target_met: bool | None = None
    target_value: float | None = None

    def frame(self, metadata: Mapping[str, bytes] | None = None) -> bytes:
        """The .spic file: the one place a frame is packed, with `metadata` (ICC
        profile, EXIF, XMP: kind -> bytes) in the same pass."""
        return container.pack(self.codec, self.width, self.height, self.payload,
                              self.streams, metadata=metadata)

    @property
    def bpp(self) -> float:
        """Of the file without metadata."""
        return 8 * len(self.frame()) / (self.width * self.height)

    def result(self, metadata: Mapping[str, bytes] | None = None) -> EncodeResult:
        return EncodeResult(self.frame(metadata), self.reconstruction, self.quality,
                            self.width, self.height, self.notes)


@dataclass
class EncodeResult:
    data: bytes  # the .spic file
    reconstruction: np.ndarray | None  # (H, W, 3) uint8, what the decoder will output
    quality: float
    width: int
    height: int
    notes: tuple[str, ...] = ()  # what a user should be told (e.g. "stopped early")
    target: Target | None = None  # the --bpp/--size/--psnr that chose the quality
    target_met: bool = True  # False: --best-effort wrote the closest file
    trials: int = 1  # encodes made (a target's search makes several)
    psnr: float | None = None  # dB, where a --psnr search measured it

    @property
    def bpp(self) -> float:
        return 8 * len(self.data) / (self.width * self.height)


class CodecEncoder(Protocol):
    """What a codec's `frontend.load_encoder` returns. A codec that declares
    `rate_targets` also has `quality_grid() -> (lowest, highest, step)`, the
    qualities its files can hold, over which a target is searched."""

    def encode_streams(self, pixels: np.ndarray, quality: float | None = None,
                       bpp: float | None = None, reconstruct: bool = True,
                       **options: Any) -> CodedImage: ...


class Decoder(Protocol):
    def decode(self, data: bytes) -> np.ndarray: ...


class Encoder:
    """A loaded encoder of one codec: pixels -> a .spic file (`EncodeResult`)."""

    def __init__(self, codec: str, coder: CodecEncoder):
        self.codec = codec
        self.coder = coder

    def encode(self, pixels: np.ndarray, quality: float | None = None,
               bpp: float | None = None, reconstruct: bool = True,
               metadata: Mapping[str, bytes] | None = None, size: str | int | None = None,
               psnr: float | None = None, best_effort: bool = False,
               record_target: bool = True, **options: Any) -> EncodeResult:
        """`options`: the codec's encode options (`OPTIONS.names("encode")`);
        `metadata`: kind -> bytes, stored beside the image. One of `quality` or a
        target: `bpp`, `size` (bytes, or text such as "40k": `targets.parse_size`),
        `psnr` (dB). A target that cannot be met raises `targets.TargetNotMet`, or
        with `best_effort` gives the closest file (`target_met` False, a note).
        `record_target`: store the target in the file for `segpic info`
        (`target_record`, about 230 bytes, counted by the target)."""
        with needs_encode_install(f"encoding with {get(self.codec).title}"):
            return self._encode(pixels, quality, bpp, reconstruct, metadata, size, psnr,
                                best_effort, record_target, options)

    def _encode(self, pixels: np.ndarray, quality: float | None, bpp: float | None,
                reconstruct: bool, metadata: Mapping[str, bytes] | None,
                size: str | int | None, psnr: float | None, best_effort: bool,
                record_target: bool, options: dict[str, Any]) -> EncodeResult:
        from . import target_record, targets  # numpy-free, but not for `segpic info`

        _check_names(self.codec, options, get(self.codec).options().names("encode"),
                     "encode")
        target = targets.from_options(quality, bpp, size, psnr)
        metadata = target_record.without(metadata or {})
        if target is None:
            coded = self.coder.encode_streams(pixels, quality=quality,
                                              reconstruct=reconstruct, **options)
            return coded.result(metadata)
        declared = get(self.codec).options()
        if not declared.takes_targets:
            raise CodecError(f"{self.codec} has no rate target yet: use --quality")
        from .target_search import encode_for_target, encode_steered

        if declared.steered_targets:
            return encode_steered(self.codec, self.coder, pixels, target, metadata, best_effort,
                                  reconstruct, options, record_target)
        return encode_for_target(self.coder, pixels, target, metadata, best_effort,
                                 reconstruct, options, record_target)


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


def _check_names(codec: str, options: Mapping[str, Any], allowed: tuple[str, ...],
                 stage: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise CodecError(f"the {codec} {stage} takes no option {', '.join(unknown)}")


def load_encoder(codec: str = DEFAULT_CODEC, device: str = "auto",
                 progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 **options: Any) -> Encoder:
    """An encoder of `codec`; `options`: its loader options (`OPTIONS.names("loader")`:
    segpic weights, model, exact; moric steps, time_limit, preset); None means the
    default. `progress` and `should_stop`: hooks of a codec that optimises."""
    entry = get(codec)
    declared = entry.options()
    given = {k: v for k, v in options.items() if v is not None}
    _check_names(codec, given, declared.names("loader"), "encoder")
    hooks = {k: v for k, v in (("progress", progress), ("should_stop", should_stop))
             if v is not None}
    if hooks and not declared.optimises:
        raise CodecError(f"the {codec} encoder does not optimise: it takes no "
                         f"{' or '.join(hooks)} hook")
    with needs_encode_install(f"encoding with {entry.title}"):
        return Encoder(codec, entry.frontend().load_encoder(device=device, **given, **hooks))


def load_decoder(frame: container.FrameHeader, weights: str | Path | None = None,
                 device: str = "auto", **options: Any) -> Decoder:
    """A decoder for files like `frame` (its codec, its model). `options`: those the
    codec declares for its decoder (segpic: exact); None means the default."""
    given = {k: v for k, v in options.items() if v is not None}
    entry = get(frame.codec)
    _check_names(frame.codec, given, entry.options().decoder_names(), "decoder")
    with needs_encode_install(f"decoding {entry.title} files"):
        return entry.frontend().load_decoder(frame, weights=weights, device=device, **given)


def encode(pixels: np.ndarray, codec: str = DEFAULT_CODEC, quality: float | None = None,
           bpp: float | None = None, metadata: Mapping[str, bytes] | None = None,
           size: str | int | None = None, psnr: float | None = None,
           best_effort: bool = False, **options: Any) -> EncodeResult:
    """Encode RGB pixels with `codec` into a .spic file; `options`: the codec's own,
    loader and encode ones together (and device). A quality or one target (bpp,
    size, psnr; see `Encoder.encode`)."""
    loader, rest = split_options(codec, options)
    return load_encoder(codec, **loader).encode(pixels, quality=quality, bpp=bpp,
                                                metadata=metadata, size=size, psnr=psnr,
                                                best_effort=best_effort, **rest)


def split_options(codec: str, options: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the options that pick the encoder, for `load_encoder`, device included; the
    encode options, for each `Encoder.encode`), as `codec` declares them. None
    values are left out (the codec's default); an undeclared option is an error."""
    declared = get(codec).options()
    given = {k: v for k, v in options.items() if v is not None}
    loader_names = ("device", *declared.names("loader"))
    _check_names(codec, given, loader_names + declared.names("encode"), "encoder")
    loader = {k: v for k, v in given.items() if k in loader_names}
    rest = {k: v for k, v in given.items() if k not in loader_names}
    return loader, rest


def all_option_names() -> tuple[str, ...]:
    """Every option any codec declares, and those all codecs take (quality, the
    targets, device): what the Pillow plugin passes on from `Image.save`."""
    names = list(COMMON)
    for entry in CODECS.values():
        names += [o.name for o in entry.options().options if o.name not in names]
    return tuple(names)


def decode(data: bytes, weights: str | Path | None = None, device: str = "auto",
           **options: Any) -> np.ndarray:
    """.spic bytes of any codec -> (H, W, 3) uint8 pixels; `options` as `load_decoder`."""
    frame = container.read_frame(data)
    return load_decoder(frame, weights=weights, device=device, **options).decode(data)

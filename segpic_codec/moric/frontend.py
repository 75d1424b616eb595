"""MoRIC behind the codec-neutral API (`segpic_codec.codecs`): no weights; every
encode is an optimisation whose budget is set by steps, a time limit or a preset.
Its options are declared in `options`; the budget is checked once, by
`codec.EncodeSettings`, when the encoder is loaded."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import container
from ..codecs import CodedImage
from ..container import FrameHeader
from ..errors import CodecError
from ..targets import Target
from .options import DEFAULT_PRESET, DEFAULT_QUALITY


def default_steps() -> int:
    """The step budget of the default preset."""
    from .training.recipe import PRESETS

    return PRESETS[DEFAULT_PRESET].steps


class MoricEncoder:
    """Encodes one image at a time with a fixed budget and device."""

    def __init__(self, device: str = "auto", steps: int | None = None,
                 time_limit: float | None = None, preset: str = DEFAULT_PRESET,
                 progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        from ..devices import select_device  # torch: the encoder's alone
        from .codec import EncodeSettings

        self.settings = EncodeSettings(steps=steps, time_limit=time_limit, preset=preset,
                                       device=select_device(device).type, progress=progress,
                                       should_stop=should_stop)

    def encode_streams(self, pixels: np.ndarray, quality: float | None = None,
                       bpp: float | None = None, reconstruct: bool = True,
                       regions: str | Path | np.ndarray | None = None,
                       region_count: int | None = None, contours: str | None = None,
                       roi: str | Path | np.ndarray | None = None,
                       target: Target | None = None,
                       file_size: Callable[[bytes, list[bytes]], int] | None = None
                       ) -> CodedImage:
        """MoRIC's payload and streams of `pixels` (options as `options.OPTIONS`
        declares them; None: the default). `target` (with `file_size`, the bytes of
        the file as written from a payload and streams): a --bpp, --size or
        --psnr met in this one encode, instead of `quality`."""
        from . import codec
        from .target_fit import TargetRequest

        if bpp is not None:
            raise CodecError("moric takes its --bpp as a target (targets.Target)")
        if not isinstance(regions, np.ndarray):
            regions = regions or "auto"
        quality = DEFAULT_QUALITY if quality is None else quality
        request = None
        if target is not None:
            if file_size is None:
                raise CodecError("a target needs the file's size function")
            request = TargetRequest(target, file_size)
        settings = dataclasses.replace(self.settings, quality=quality, target=request)
        kwargs: dict[str, Any] = {"regions": _partition_source(regions, pixels)}
        if region_count is not None:
            if options_given(regions):
                raise CodecError("--region-count applies to --regions auto")
            kwargs["region_count"] = region_count
        if roi is not None:
            if "region_count" in kwargs or options_given(regions):
                raise CodecError("--roi codes one object: it does not take --regions or "
                                 "--region-count")
            kwargs["roi"] = _object_mask(roi, pixels)
        if contours is not None:
            if isinstance(regions, str) and regions == "none" and roi is None:
                raise CodecError("--contours applies to files with regions (not --regions "
                                 "none)")
            kwargs["contour_mode"] = contours
        encoded = codec.encode_with(pixels, settings, **kwargs)
        h, w = pixels.shape[:2]
        notes = ()
        if encoded.interrupted:
            notes = (f"stopped early after {encoded.steps} optimisation steps: the file "
                     "holds the best state reached so far",)
        return CodedImage("moric", w, h, encoded.payload, encoded.streams, encoded.quality,
                          encoded.reconstruction if reconstruct else None, notes,
                          encoded.target_met, encoded.target_value)


def _partition_source(regions: str | Path | np.ndarray, pixels: np.ndarray
                      ) -> str | np.ndarray:
    """"auto", "none", a label array, or a label image file read as labels."""
    if isinstance(regions, np.ndarray) or regions in ("auto", "none"):
        return regions
    from .contours.partition import load_label_image

    height, width = pixels.shape[:2]
    return load_label_image(regions, height, width)


def options_given(regions: object) -> bool:
    return isinstance(regions, np.ndarray) or regions != "auto"


def _object_mask(roi: str | Path | np.ndarray, pixels: np.ndarray) -> np.ndarray:
    if isinstance(roi, np.ndarray):
        return roi
    from .contours.partition import load_object_mask

    height, width = pixels.shape[:2]
    return load_object_mask(roi, height, width)


class MoricDecoder:
    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_regions(data, None)

    def decode_regions(self, data: bytes, regions: set[int] | None) -> np.ndarray:
        """Layered decoding: (H, W, 4) RGBA with only `regions` drawn (None: all, RGB)."""
        from .decoder.decode import decode  # numpy only: no torch to import

        frame = container.read_frame(data)
        if frame.codec != "moric":
            raise CodecError(f"not a MoRIC file (codec {frame.codec!r})")
        return decode(frame.payload, container.split_streams(data, frame),
                            frame.width, frame.height, regions)


def load_encoder(device: str = "auto", steps: int | None = None,
                 time_limit: float | None = None, preset: str = DEFAULT_PRESET,
                 progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> MoricEncoder:
    return MoricEncoder(device, steps, time_limit, preset, progress, should_stop)


def load_decoder(frame: FrameHeader, weights: str | Path | None = None,
                 device: str = "auto") -> MoricDecoder:
    # The decoder runs on the CPU in numpy: it is integer arithmetic throughout and
    # its networks are small; `weights` and `device` do not apply.
    return MoricDecoder()

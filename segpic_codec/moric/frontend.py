"""MoRIC behind the codec-neutral API (`segpic_codec.codecs`): no weights; every
encode is an optimisation whose budget is set by steps, a time limit or a preset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import container
from ..codecs import EncodeResult
from ..container import FrameHeader
from ..devices import select_device
from ..errors import CodecError

DEFAULT_QUALITY = 3.5
# what `codecs.encode` passes to `load_encoder` (the budget and the hooks)
LOADER_OPTIONS = ("device", "steps", "time_limit", "preset", "progress", "should_stop",
                  "weights", "model")
DEFAULT_PRESET = "medium"


def default_steps() -> int:
    """The step budget of the default preset."""
    from .codec import PRESETS

    return PRESETS[DEFAULT_PRESET].steps


class MoricEncoder:
    """Encodes one image at a time with a fixed budget and device."""

    def __init__(self, device: str = "auto", steps: int | None = None,
                 time_limit: float | None = None, preset: str | None = None,
                 progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        from . import codec

        if preset is not None and preset not in codec.PRESETS:
            raise CodecError(f"unknown preset {preset!r}; choose one of: "
                             f"{', '.join(codec.PRESETS)}")
        if steps is not None and steps < 1:
            raise CodecError("steps must be at least 1")
        if time_limit is not None and not time_limit > 0:
            raise CodecError("the time limit must be positive")
        self.device = select_device(device).type
        self.steps = steps
        self.time_limit = time_limit
        self.preset = preset
        self.progress = progress
        self.should_stop = should_stop

    def encode(self, pixels: np.ndarray, quality: float | None = None,
               bpp: float | None = None, reconstruct: bool = True,
               **options: Any) -> EncodeResult:
        from . import codec

        if bpp is not None:
            raise CodecError("moric has no --bpp search (each encode is a long "
                             "optimisation); give a --quality")
        regions = options.pop("regions", None) or "auto"
        region_count = options.pop("region_count", None)
        roi = options.pop("roi", None)
        contours = options.pop("contours", None)
        if options:
            raise CodecError(f"moric takes no option {', '.join(sorted(options))}")
        quality = DEFAULT_QUALITY if quality is None else quality
        kwargs: dict[str, Any] = {"steps": self.steps, "time_limit": self.time_limit,
                                  "regions": _partition_source(regions, pixels)}
        if region_count is not None:
            if regions != "auto":
                raise CodecError("--region-count applies to --regions auto")
            kwargs["region_count"] = region_count
        if roi is not None:
            if "region_count" in kwargs or options_given(regions):
                raise CodecError("--roi codes one object: it does not take --regions or "
                                 "--region-count")
            kwargs["roi"] = _object_mask(roi, pixels)
        if contours is not None:
            if regions == "none" and roi is None:
                raise CodecError("--contours applies to files with regions (not --regions "
                                 "none)")
            kwargs["contour_mode"] = contours
        if self.preset is not None:
            kwargs["preset"] = self.preset
        encoded = codec.encode(pixels, quality=quality, device=self.device,
                               progress=self.progress, should_stop=self.should_stop, **kwargs)
        h, w = pixels.shape[:2]
        data = container.pack("moric", w, h, encoded.payload, encoded.streams)
        notes = ()
        if encoded.interrupted:
            notes = (f"stopped early after {encoded.steps} optimisation steps: the file "
                     "holds the best state reached so far",)
        return EncodeResult(data, encoded.reconstruction if reconstruct else None, quality,
                            w, h, notes)


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
        from . import codec

        frame = container.read_frame(data)
        if frame.codec != "moric":
            raise CodecError(f"not a MoRIC file (codec {frame.codec!r})")
        return codec.decode(frame.payload, container.split_streams(data, frame),
                            frame.width, frame.height, regions)


def load_encoder(device: str = "auto", **options: Any) -> MoricEncoder:
    for key in ("weights", "model"):
        if options.pop(key, None) is not None:
            raise CodecError(f"moric has no trained weights: --{key} does not apply")
    return MoricEncoder(device=device, **options)


def load_decoder(frame: FrameHeader, weights: str | Path | None = None,
                 device: str = "auto") -> MoricDecoder:
    # The decoder runs on the CPU: its entropy path is integer arithmetic and its
    # synthesis is small; `weights` and `device` do not apply.
    return MoricDecoder()

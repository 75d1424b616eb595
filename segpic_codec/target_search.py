"""A target (`targets.Target`) met by a codec's encoder, counted on the whole
file as written (its metadata and the target's record included): by trial
encodes over the quality scale (`encode_for_target`; the search itself is
`targets.search`), or in one encode that steers itself (`encode_steered`,
MoRIC), which is handed the function that measures the file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import container, target_record
from .quality_metrics import psnr_rgb
from .targets import QualityGrid, Target, TargetNotMet, Trial, search

if TYPE_CHECKING:
    import numpy as np

# the encoder (`codecs.CodecEncoder`), its `codecs.CodedImage` and the
# `codecs.EncodeResult` go by `Any` here: codecs imports this module
CodedImage = Any


def encode_for_target(coder: Any, pixels: np.ndarray, target: Target,
                      metadata: Mapping[str, bytes], best_effort: bool, reconstruct: bool,
                      options: Mapping[str, Any], record: bool = True) -> Any:
    """The file whose quality the search picks; `metadata` without any record. The
    record says whether the target was met, so both records (met or not) have the
    same length and a trial's size is the written file's. `record`: False leaves
    the record out."""
    lowest, highest, step = coder.quality_grid()
    grid = QualityGrid(lowest, highest, step)
    boxes = _boxes(metadata, target, record)
    pixel_count = int(pixels.shape[0]) * int(pixels.shape[1])

    def trial(quality: float) -> Trial[CodedImage]:
        measure = not target.rate
        coded = coder.encode_streams(pixels, quality=quality,
                                     reconstruct=reconstruct or measure, **options)
        if measure:
            return Trial(quality, psnr_rgb(pixels, coded.reconstruction), coded)
        return Trial(quality, float(len(coded.frame(boxes[True]))), coded)

    outcome = search(trial, target, grid, pixel_count)
    coded, value = outcome.best.encoded, outcome.best.value
    result = coded.result(boxes[outcome.met])
    # a rate target reports the file as written (its record may say "not met")
    value = float(len(result.data)) if target.rate else value
    end = "lowest" if target.rate else "highest"
    failure = (f"the {end} quality ({coded.quality:g}) gives "
               f"{_reached(target, value, pixel_count)} ({outcome.trials} trial encodes)")
    return _settle(result, target, outcome.met, outcome.trials, value, failure, best_effort,
                   reconstruct)


def encode_steered(codec: str, coder: Any, pixels: np.ndarray, target: Target,
                   metadata: Mapping[str, bytes], best_effort: bool, reconstruct: bool,
                   options: Mapping[str, Any], record: bool = True) -> Any:
    """One encode that meets `target` itself: the codec's `encode_streams` takes
    the target and `file_size(payload, streams)`, the bytes of the file with
    `metadata` and the record. A PSNR counts as met within
    `targets.PSNR_TOLERANCE` of the goal."""
    boxes = _boxes(metadata, target, record)
    height, width = int(pixels.shape[0]), int(pixels.shape[1])

    def file_size(payload: bytes, streams: list[bytes]) -> int:
        # as codecs.CodedImage.frame packs it (codecs imports this module)
        return len(container.pack(codec, width, height, payload, streams,
                                  metadata=boxes[True]))

    coded = coder.encode_streams(pixels, reconstruct=True, target=target,
                                 file_size=file_size, **options)
    met = bool(coded.target_met)
    result = coded.result(boxes[met])
    value = float(len(result.data)) if target.rate else float(coded.target_value)
    end = "smallest file" if target.rate else "highest PSNR"
    failure = f"the {end} reached is {_reached(target, value, height * width)} (one encode)"
    return _settle(result, target, met, 1, value, failure, best_effort, reconstruct)


def _boxes(metadata: Mapping[str, bytes], target: Target, record: bool
           ) -> dict[bool, dict[str, bytes]]:
    """The metadata a file is written with, by whether the target was met: with
    the target's record (both the same length), or without one (`record` False)."""
    stored = target_record.encode_target(target.kind, target.value)
    return {met: target_record.with_record(metadata, stored, met) if record else
            dict(metadata) for met in (True, False)}


def _settle(result: Any, target: Target, met: bool, trials: int, value: float, failure: str,
            best_effort: bool, reconstruct: bool) -> Any:
    """The result told what made it; a target not met raises `TargetNotMet`
    (saying `failure`: what was reached), or with `best_effort` notes it."""
    result.target, result.target_met, result.trials = target, met, trials
    result.psnr = None if target.rate else value
    if not met:
        message = f"cannot meet {target}: {failure}"
        if not best_effort:
            raise TargetNotMet(message + "; --best-effort writes it anyway", result)
        result.notes += (f"best effort: {message}",)
    if not reconstruct:
        result.reconstruction = None
    return result


def _reached(target: Target, value: float, pixels: int) -> str:
    if target.kind == "psnr":
        return f"{value:.2f} dB"
    if target.kind == "bpp":
        return f"{8 * value / pixels:.4f} bpp ({int(value)} bytes)"
    return f"{int(value)} bytes"

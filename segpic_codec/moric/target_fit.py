"""A --bpp, --size or --psnr target in one MoRIC encode: the λ controller's goal
(`controller_for`), its first guess (`jpeg_anchor`) and the verdict on the
file (`outcome`).

The controller (`training.rate_control`) steers the run to its goal; the file
is then coded and measured: a size on the file itself, a PSNR on the decoder's
reconstruction. A size above its limit is not met (the encoder says so and
writes nothing, or with --best-effort writes it anyway); the run aims a little
under the limit (`AIM_SIZE`) for that reason. A PSNR within PSNR_TOLERANCE of
its goal is met.

Ways to bring a file that missed back to its goal were tried and are not
kept (`bench/results/targets/README.md`): trimming the coded latents with a
dead zone (toward zero: kodim15 at 0.25 bpp fell from 31.9 to 19.7 dB to save
4 % of its bytes; toward the means the ARM predicts from the plainly rounded
canvas: no dead zone up to 64 brought kodim15 or kodim01 at 0.25 bpp under
its limit, since every moved symbol changes its neighbours' contexts), and
training on at the corrected λ for a tenth more steps (at a tenth of the peak
learning rate the rate moved by 0.1 %; at the full peak it rose by 20 %).
Flipping the roundings the ARM finds cheaper saves about 1 % before the
changed contexts turn it around.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image

from ..quality_metrics import psnr_rgb
from ..targets import PSNR_TOLERANCE, Target
from . import layout
from .file_format import NUM_GRIDS
from .training.rate_control import Anchor, Goal, LambdaController
from .training.recipe import lambda_to_quality

T = TypeVar("T")


@dataclass(frozen=True)
class TargetRequest:
    """A --bpp, --size or --psnr target met in this one encode: λ is steered
    through the run (`training.rate_control`). `file_size(payload, streams)`:
    the bytes of the file as it will be written (frame, metadata and the
    target's record included)."""

    target: Target
    file_size: Callable[[bytes, list[bytes]], int]


# where a run aims: a size this share of its limit (the controller's end is
# predicted within about a per cent from its last update on), a PSNR this many
# dB above the goal
AIM_SIZE = 0.98
AIM_OVER_PSNR = 0.04
# the parameter stream's bytes against the quality, from the medium encodes of
# eight Kodak images (`python scripts/moric_first_guess_fit.py
# bench/results/moric-time/now-ec928e6/points-440.jsonl`): 1,118 at quality 1,
# about 109 more per quality unit, each image within 150 bytes
PARAMETER_BYTES = (1118.0, 108.9)


def jpeg_measure(image: np.ndarray) -> tuple[float, float]:
    """(bpp, PSNR) of a quality-75 JPEG of `image`'s colours: how much detail it
    has, cheaply."""
    pixels = np.ascontiguousarray(image[..., :3])
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return 8 * len(buffer.getvalue()) / (image.shape[0] * image.shape[1]), \
        psnr_rgb(pixels, decoded)


def jpeg_anchor(image: np.ndarray) -> Anchor:
    """Where a medium MoRIC encode of `image` would end at the anchor's λ, guessed
    from a JPEG (quality 75) of it: a cheap measure of how much detail it has.
    Fitted on the eight Kodak images of the targets' table (kodim01, 05, 08, 14,
    15, 19, 21, 23), with the first-guess curves of `rate_control`, to the
    medium encoder's fixed-λ files (`scripts/moric_first_guess_fit.py`):
    ln(latent bpp) within 0.16 of the fit, PSNR within 0.23 dB; the controller
    corrects the rest."""
    jpeg_bpp, jpeg_psnr = jpeg_measure(image)
    return Anchor(math.exp(1.486 * math.log(jpeg_bpp) - 1.982), 0.983 * jpeg_psnr - 3.895)


@dataclass
class ParameterBytes:
    """The parameter stream's bytes at a λ, for a size target's budget: the
    estimate in the quality (PARAMETER_BYTES), or, once a quantisation search
    has measured them (`probe_parameters`), that measure moved along the
    estimate's slope."""

    measured: tuple[float, int] | None = None  # (quality, bytes)

    def at(self, lmbda: float) -> float:
        quality = lambda_to_quality(lmbda)
        if self.measured is None:
            return PARAMETER_BYTES[0] + PARAMETER_BYTES[1] * (quality - 1)
        measured_quality, measured_bytes = self.measured
        return measured_bytes + PARAMETER_BYTES[1] * (quality - measured_quality)


def controller_for(request: TargetRequest, drawn_pixels: int, pixels: int,
                   contour_stream: bytes | None, anchor: Anchor,
                   parameters: ParameterBytes | None = None) -> LambdaController:
    """The λ controller of a target, starting from the λ that `anchor` suggests:
    a size becomes latent bits per drawn pixel (the file less its frame, header,
    metadata, contours and the parameters' bytes at each λ, `parameters`)."""
    parameters = parameters or ParameterBytes()
    goal = request.target
    if not goal.rate:
        return LambdaController(Goal("psnr", lambda _: goal.value + AIM_OVER_PSNR,
                                     lambda dB, _: f"{goal}: heading for {dB:.2f} dB"),
                                anchor)
    budget = goal.max_bytes(pixels) * AIM_SIZE
    contours = [] if contour_stream is None else [contour_stream]

    def rest(lmbda: float) -> int:
        """The file's bytes besides the latents' at λ."""
        stream = bytes(max(round(parameters.at(lmbda)), 0))
        return request.file_size(bytes(layout.SIZE), [stream, *contours, *[b""] * NUM_GRIDS])

    def describe(latent_bpp: float, lmbda: float) -> str:
        size = latent_bpp * drawn_pixels / 8 + rest(lmbda)
        heading = f"{size:.0f} bytes" if goal.kind == "size" else f"{8 * size / pixels:.3f} bpp"
        return f"{goal}: heading for {heading}"

    return LambdaController(Goal("rate", lambda lmbda: 8.0 * (budget - rest(lmbda)) /
                                 drawn_pixels, describe), anchor)


# a file that ends above its size limit is coded again with the networks
# quantised at λ times these (coarser steps: fewer parameter bytes), in turn
REQUANTISE_FACTORS = (2.0, 4.0, 8.0, 16.0, 32.0)


def fit_size(request: TargetRequest, pixels: int, plain: T, code: Callable[[float], T],
             lmbda: float, size_of: Callable[[T], int]) -> T:
    """The coded file of a size target: `plain` (the networks quantised at the
    run's λ) when it fits; else the first that fits of the files `code(λ')`
    whose networks are quantised at larger λ' (REQUANTISE_FACTORS); else
    `plain` (not met). Coarser networks cost far more PSNR per byte than λ
    (kodim05 at 0.25 bpp: 1.4 % fewer bytes for 0.39 dB; kodim08: 2.5 % for
    0.85 dB, `bench/results/targets/README.md`), so they serve only to make a
    file fit its limit; a file that misses anyway keeps the run's quality."""
    limit = request.target.max_bytes(pixels)
    if size_of(plain) <= limit:
        return plain
    for factor in REQUANTISE_FACTORS:
        candidate = code(lmbda * factor)
        if size_of(candidate) <= limit:
            return candidate
    return plain


def psnr_of(pixels: np.ndarray, reconstruction: np.ndarray, labels: np.ndarray,
            object_only: bool) -> float:
    """dB over the drawn pixels (the object's alone in single-object coding)."""
    if not object_only:
        return psnr_rgb(pixels, reconstruction[..., :3])
    drawn = labels != 0
    return psnr_rgb(pixels[drawn], reconstruction[..., :3][drawn])


def outcome(request: TargetRequest, payload: bytes, streams: list[bytes], pixels: np.ndarray,
            reconstruction: np.ndarray, labels: np.ndarray, object_only: bool
            ) -> tuple[bool, float]:
    """(met, what was reached: the file's bytes, or its PSNR in dB)."""
    goal = request.target
    if goal.rate:
        size = float(request.file_size(payload, streams))
        return size <= goal.max_bytes(pixels.shape[0] * pixels.shape[1]), size
    psnr = psnr_of(pixels, reconstruction, labels, object_only)
    return psnr >= goal.value - PSNR_TOLERANCE, psnr

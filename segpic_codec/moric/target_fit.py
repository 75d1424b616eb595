"""A --bpp, --size or --psnr target in one MoRIC encode: the λ controller's goal
(`controller_for`) and the trim of the coded latents at the end (`meet`).

The controller (`training.rate_control`) brings the run near its goal, aiming
a little past it: a little more rate, a little more PSNR. The file is then
coded and measured (a size on the file itself, a PSNR on the reconstruction)
and, where it is past the goal, trimmed: each latent is pulled toward the mean
that the ARM predicts for it (from the plainly rounded canvas) by a dead zone
d, x -> round(m + sign(x - m) max(|x - m| - d, 0)), so the symbols move to
where their distributions have their mass: the rate falls, and the error
grows, as d grows from 0 (plain rounding). A bisection over d finds the
smallest d whose coded file fits (every trial is the real file, so a size is
never exceeded), or the largest whose PSNR still reaches the goal. (Pulling
toward zero instead costs far more: kodim15 at 0.25 bpp fell from 31.9 to
19.7 dB to save 4 % of its bytes.) Trimming cannot raise the rate: a run that
ends below its goal keeps its file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..quality_metrics import psnr_from_mse, psnr_rgb
from ..targets import PSNR_TOLERANCE, Target
from . import layout
from .file_format import MAX_ABS_LATENT, NUM_GRIDS
from .networks.arm import gather_contexts
from .networks.model import MoricModel
from .training.rate_control import Anchor, Goal, LambdaController
from .training.recipe import lambda_to_quality

# the bisection's range of d, and its rounds: d = 1 moves every latent within
# 1.5 of its predicted mean onto the mean's integer; past it, larger steps up to
# LAST_DEAD_ZONE, which leaves no latent off its mean (in practice)
BISECTION_HIGH = 1.0
BISECTION_ROUNDS = 7
BEYOND = (2.0, 4.0, 16.0)
LAST_DEAD_ZONE = 64.0


@dataclass
class Trimmed:
    integers: Tensor  # the latents to code (int64, the canvas's shape)
    dead_zone: float
    value: float  # the file's size in bytes or its PSNR, as measured
    met: bool


def dead_zone_integers(scaled: Tensor, mask: Tensor, dead_zone: float, low: int,
                       high: int, centre: Tensor | None = None) -> Tensor:
    """round(m + sign(x - m) max(|x - m| - dead_zone, 0)) with m = `centre` (zero
    when None), clamped to [low, high], zero on margins. `scaled`: the latents in
    quantisation steps (value x gain); dead_zone 0 is plain rounding."""
    if dead_zone == 0.0:
        return (torch.round(scaled) * mask).to(torch.int64).clamp(low, high)
    m = torch.zeros_like(scaled) if centre is None else centre
    shifted = scaled - m
    pulled = m + torch.sign(shifted) * torch.clamp(shifted.abs() - dead_zone, min=0.0)
    return (torch.round(pulled) * mask).to(torch.int64).clamp(low, high)


def trim(measure: Callable[[Tensor], float], ok: Callable[[float], bool], scaled: Tensor,
         mask: Tensor, low: int, high: int, rate: bool,
         plain: tuple[Tensor, float], centre: Tensor | None = None) -> Trimmed:
    """The dead zone that meets the goal (`ok` of `measure(integers)`): for a
    `rate` goal the smallest that fits, else the largest that still reaches it.
    `plain`: the integers of plain rounding and their measure (d = 0); `centre`:
    where the dead zone pulls each latent (zero when None)."""
    ints, value = plain
    if not ok(value):
        if not rate:  # trimming only lowers a PSNR: the goal is out of reach
            return Trimmed(ints, 0.0, value, False)
        return _fit_rate(measure, ok, scaled, mask, low, high, centre)
    if rate:  # it fits as it is: trimming would only lose quality
        return Trimmed(ints, 0.0, value, True)
    return _bisect(measure, ok, scaled, mask, low, high, centre,
                   Trimmed(ints, 0.0, value, True), BISECTION_HIGH)


def _fit_rate(measure: Callable[[Tensor], float], ok: Callable[[float], bool], scaled: Tensor,
              mask: Tensor, low: int, high: int, centre: Tensor | None) -> Trimmed:
    """Too large at d = 0: find a d that fits, then bisect toward the smallest."""
    failed = 0.0
    for d in (BISECTION_HIGH, *BEYOND, LAST_DEAD_ZONE):
        ints = dead_zone_integers(scaled, mask, d, low, high, centre)
        value = measure(ints)
        if ok(value):
            return _bisect(measure, ok, scaled, mask, low, high, centre,
                           Trimmed(ints, d, value, True), failed)
        failed = d
    return Trimmed(ints, LAST_DEAD_ZONE, value, False)  # not even with no latents left


def _bisect(measure: Callable[[Tensor], float], ok: Callable[[float], bool], scaled: Tensor,
            mask: Tensor, low: int, high: int, centre: Tensor | None, good: Trimmed,
            bad: float) -> Trimmed:
    """Halve the interval between a dead zone that meets the goal (`good`) and
    one that does not (`bad`, either side of it); -> the last that meets it."""
    for _ in range(BISECTION_ROUNDS):
        d = 0.5 * (good.dead_zone + bad)
        ints = dead_zone_integers(scaled, mask, d, low, high, centre)
        value = measure(ints)
        if ok(value):
            good = Trimmed(ints, d, value, True)
        else:
            bad = d
    return good


@dataclass(frozen=True)
class TargetRequest:
    """A --bpp, --size or --psnr target met in this one encode: λ is steered
    through the run (`training.rate_control`), the latents trimmed at its end
    (`target_fit`). `file_size(payload, streams)`: the bytes of the file as it
    will be written (frame, metadata and the target's record included)."""

    target: Target
    file_size: Callable[[bytes, list[bytes]], int]


# where a run aims: a size this share of the limit, a PSNR this many dB above
# the goal; the trim takes the excess back
AIM_SIZE = 1.03
AIM_OVER_PSNR = 0.10
PSNR_TRIMMED_TO = 0.05  # dB above the goal, for a file more than PSNR_TOLERANCE above
# the parameter stream's bytes against the quality, from the medium encodes of
# eight Kodak images (bench/results/moric-time/now-af2dfd5): 1,080 at quality 1,
# about 85 more per quality unit
PARAMETER_BYTES = (1080.0, 85.0)


def jpeg_anchor(image: np.ndarray) -> Anchor:
    """Where a medium MoRIC encode of `image` would end at the anchor's λ, guessed
    from a JPEG (quality 75) of it: a cheap measure of how much detail it has.
    Fitted on the eight Kodak images of the targets' table (kodim01, 05, 08, 14,
    15, 19, 21, 23; `bench/results/targets/README.md`): ln(latent bpp) within
    0.2 of the fit, PSNR within 0.5 dB; the controller corrects the rest."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image[..., :3])).save(buffer, "JPEG", quality=75)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    jpeg_bpp = 8 * len(buffer.getvalue()) / (image.shape[0] * image.shape[1])
    return Anchor(math.exp(1.432 * math.log(jpeg_bpp) - 1.840),
                  0.932 * psnr_rgb(image[..., :3], decoded) - 2.165)


def controller_for(request: TargetRequest, drawn_pixels: int, pixels: int,
                   contour_stream: bytes | None, anchor: Anchor) -> LambdaController:
    """The λ controller of a target, starting from the λ that `anchor` suggests:
    a size becomes latent bits per drawn pixel (the file less its frame, header,
    metadata, contours and the parameters' estimated bytes at the quality of
    each λ)."""
    goal = request.target
    if not goal.rate:
        return LambdaController(Goal("psnr", lambda _: goal.value + AIM_OVER_PSNR,
                                     lambda dB, _: f"{goal}: heading for {dB:.2f} dB"),
                                anchor)
    budget = goal.max_bytes(pixels) * AIM_SIZE
    contours = [] if contour_stream is None else [contour_stream]

    def rest(lmbda: float) -> int:
        """The file's bytes besides the latents' at λ."""
        quality = lambda_to_quality(lmbda)
        parameters = bytes(round(PARAMETER_BYTES[0] + PARAMETER_BYTES[1] * (quality - 1)))
        return request.file_size(bytes(layout.SIZE), [parameters, *contours,
                                                      *[b""] * NUM_GRIDS])

    def describe(latent_bpp: float, lmbda: float) -> str:
        size = latent_bpp * drawn_pixels / 8 + rest(lmbda)
        heading = f"{size:.0f} bytes" if goal.kind == "size" else f"{8 * size / pixels:.3f} bpp"
        return f"{goal}: heading for {heading}"

    return LambdaController(Goal("rate", lambda lmbda: 8.0 * (budget - rest(lmbda)) /
                                 drawn_pixels, describe), anchor)


def _float_psnr(model: MoricModel, target: torch.Tensor, ints: torch.Tensor) -> float:
    with torch.no_grad():
        q = ints.to(torch.float32)
        error = model.squared_error(q, target, model.dense_latents(q))
    return psnr_from_mse(float(error) / (3 * model.drawn_pixels), peak=1.0)


def meet(request: TargetRequest, model: MoricModel, target: torch.Tensor, scaled: torch.Tensor,
         assemble: Callable, plain: tuple[layout.Header, list[bytes], np.ndarray]
          ) -> tuple[layout.Header, list[bytes], np.ndarray, bool]:
    """Trim the latents of a file past its goal: a size measured on the file
    itself (never above it after this), a PSNR more than PSNR_TOLERANCE above
    the goal (to PSNR_TRIMMED_TO above it) on the float reconstruction (the integer
    one is within a few hundredths of a dB)."""
    goal = request.target
    if goal.rate:
        limit = goal.max_bytes(model.height * model.width)

        def measure(ints: torch.Tensor) -> float:
            header, streams, _ = assemble(ints)
            return float(request.file_size(layout.pack(header), streams))

        plain_value = float(request.file_size(layout.pack(plain[0]), plain[1]))
        ok = (lambda v: v <= limit)  # noqa: E731
    else:
        def measure(ints: torch.Tensor) -> float:
            return _float_psnr(model, target, ints)

        plain_value = measure(model.latents.integers())
        if plain_value <= goal.value + PSNR_TOLERANCE:  # close enough: keep every bit
            return (*plain, plain_value >= goal.value - PSNR_TOLERANCE)
        ok = (lambda v: v >= goal.value + PSNR_TRIMMED_TO)  # noqa: E731
    plain_ints = model.latents.integers()
    trimmed = trim(measure, ok, scaled, model.latents.mask, -MAX_ABS_LATENT, MAX_ABS_LATENT - 1,
                   goal.rate, (plain_ints, plain_value), _arm_means(model, plain_ints))
    if trimmed.dead_zone == 0.0:
        return (*plain, trimmed.met)
    return (*assemble(trimmed.integers), trimmed.met)


def _arm_means(model: MoricModel, ints: torch.Tensor) -> torch.Tensor:
    """The mean the ARM predicts for every latent (in quantisation steps) from
    its context in the canvas `ints`, canvas-shaped (zero outside the latents)."""
    with torch.no_grad():
        flat = ints.to(torch.float32).reshape(-1)
        start, stop = model.canvas.query_range
        means = torch.zeros_like(flat)
        means[start:stop] = model.arm(gather_contexts(flat, model.canvas))[0]
    return means.reshape(ints.shape) * model.latents.mask


def psnr_of(pixels: np.ndarray, reconstruction: np.ndarray, labels: np.ndarray,
            object_only: bool) -> float:
    """dB over the drawn pixels (the object's alone in single-object coding)."""
    if not object_only:
        return psnr_rgb(pixels, reconstruction[..., :3])
    drawn = labels != 0
    return psnr_rgb(pixels[drawn], reconstruction[..., :3][drawn])

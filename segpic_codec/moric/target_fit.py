"""A --bpp, --size or --psnr target in one MoRIC encode: the λ controller's goal
(`controller_for`), and the trim of the coded latents at the end (`meet`).

The controller (`training.rate_control`) brings the run near its goal, a little
past it; the trim brings the file to the goal. It rounds the latents with a
dead zone, x -> sign(x) floor(|x| + 1/2 - d): values move toward zero, where
every ARM distribution has its mass, so the rate falls and the error grows as
d grows from 0 (plain rounding). A bisection over d finds the d that meets the
goal most closely: for a size, the smallest d whose coded file fits (each
trial is the real file, so the answer never overshoots); for a PSNR, the
largest d whose reconstruction still reaches the goal (the fewest bits).
The networks stay as the final phase left them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..quality_metrics import psnr_from_mse, psnr_rgb
from ..targets import Target
from . import layout
from .file_format import MAX_ABS_LATENT, NUM_GRIDS
from .networks.model import MoricModel
from .training.rate_control import Goal, LambdaController
from .training.recipe import lambda_to_quality

# the bisection's range of d, and its rounds: d = 1 moves every latent whose
# magnitude is below 1.5 to zero; past it, larger steps up to LAST_DEAD_ZONE,
# which zeroes every latent below 64 (in practice all of them)
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
                       high: int) -> Tensor:
    """sign(x) floor(|x| + 1/2 - dead_zone), clamped to [low, high], zero on margins.
    `scaled`: the latents in quantisation steps (value x gain)."""
    magnitude = torch.clamp(torch.floor(scaled.abs() + 0.5 - dead_zone), min=0.0)
    ints = (torch.sign(scaled) * magnitude * mask).to(torch.int64)
    return ints.clamp(low, high)


def trim(measure: Callable[[Tensor], float], ok: Callable[[float], bool], scaled: Tensor,
         mask: Tensor, low: int, high: int, rate: bool,
         plain: tuple[Tensor, float]) -> Trimmed:
    """The dead zone that meets the goal (`ok` of `measure(integers)`): for a
    `rate` goal the smallest that fits, else the largest that still reaches it.
    `plain`: the integers of plain rounding and their measure (d = 0)."""
    ints, value = plain
    if not ok(value):
        if not rate:  # trimming only lowers a PSNR: the goal is out of reach
            return Trimmed(ints, 0.0, value, False)
        return _fit_rate(measure, ok, scaled, mask, low, high, plain)
    if rate:  # it fits as it is: trimming would only lose quality
        return Trimmed(ints, 0.0, value, True)
    return _lower_psnr(measure, ok, scaled, mask, low, high, plain)


def _fit_rate(measure: Callable[[Tensor], float], ok: Callable[[float], bool], scaled: Tensor,
              mask: Tensor, low: int, high: int, plain: tuple[Tensor, float]) -> Trimmed:
    """Too large at d = 0: find a d that fits, then bisect toward the smallest."""
    failed = 0.0
    for d in (BISECTION_HIGH, *BEYOND, LAST_DEAD_ZONE):
        ints = dead_zone_integers(scaled, mask, d, low, high)
        value = measure(ints)
        if ok(value):
            return _bisect(measure, ok, scaled, mask, low, high, Trimmed(ints, d, value, True),
                           failed)
        failed = d
    return Trimmed(ints, LAST_DEAD_ZONE, value, False)  # not even with no latents left


def _lower_psnr(measure: Callable[[Tensor], float], ok: Callable[[float], bool],
                scaled: Tensor, mask: Tensor, low: int, high: int,
                plain: tuple[Tensor, float]) -> Trimmed:
    """Above the PSNR goal at d = 0: bisect for the largest d that still reaches it."""
    return _bisect(measure, ok, scaled, mask, low, high, Trimmed(plain[0], 0.0, plain[1], True),
                   BISECTION_HIGH)


def _bisect(measure: Callable[[Tensor], float], ok: Callable[[float], bool], scaled: Tensor,
            mask: Tensor, low: int, high: int, good: Trimmed, bad: float) -> Trimmed:
    """Halve the interval between a dead zone that meets the goal (`good`) and
    one that does not (`bad`, either side of it); -> the last that meets it."""
    for _ in range(BISECTION_ROUNDS):
        d = 0.5 * (good.dead_zone + bad)
        ints = dead_zone_integers(scaled, mask, d, low, high)
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


# a size goal: the run aims this much above it and the trim takes the excess
# back (it can lower the rate, not raise it); a PSNR goal: this many dB above
AIM_OVER_SIZE = 0.04
AIM_OVER_PSNR = 0.10
# the parameter stream's bytes against the quality, from the medium encodes of
# eight Kodak images (bench/results/moric-time/now-af2dfd5): 1,080 at quality 1,
# about 85 more per quality unit
PARAMETER_BYTES = (1080.0, 85.0)


def controller_for(request: TargetRequest, drawn_pixels: int, pixels: int,
                   contour_stream: bytes | None) -> LambdaController:
    """The λ controller of a target: a size becomes latent bits per drawn pixel
    (the file less its frame, header, metadata, contours and the parameters'
    estimated bytes at the quality of each λ)."""
    goal = request.target
    if not goal.rate:
        return LambdaController(Goal("psnr", lambda _: goal.value + AIM_OVER_PSNR,
                                     lambda dB, _: f"{goal}: heading for {dB:.2f} dB"))
    budget = goal.max_bytes(pixels) * (1.0 + AIM_OVER_SIZE)
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
        return f"{goal}: heading for {heading}, then trimmed"

    return LambdaController(Goal("rate", lambda lmbda: 8.0 * (budget - rest(lmbda)) /
                                 drawn_pixels, describe))


def meet(request: TargetRequest, model: MoricModel, target: torch.Tensor, scaled: torch.Tensor,
         assemble: Callable, plain: tuple[layout.Header, list[bytes], np.ndarray]
          ) -> tuple[layout.Header, list[bytes], np.ndarray, bool]:
    """Trim the latents to the target (`target_fit`): a size measured on the file
    itself, a PSNR on the float reconstruction (the integer one is within a few
    hundredths of a dB)."""
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
            with torch.no_grad():
                q = ints.to(torch.float32)
                error = model.squared_error(q, target, model.dense_latents(q))
            return psnr_from_mse(float(error) / (3 * model.drawn_pixels), peak=1.0)

        plain_value = measure(model.latents.integers())
        ok = (lambda v: v >= goal.value)  # noqa: E731
    trimmed = trim(measure, ok, scaled, model.latents.mask, -MAX_ABS_LATENT, MAX_ABS_LATENT - 1,
                   goal.rate, (model.latents.integers(), plain_value))
    if trimmed.dead_zone == 0.0:
        return (*plain, trimmed.met)
    return (*assemble(trimmed.integers), trimmed.met)


def psnr_of(pixels: np.ndarray, reconstruction: np.ndarray, labels: np.ndarray,
            object_only: bool) -> float:
    """dB over the drawn pixels (the object's alone in single-object coding)."""
    if not object_only:
        return psnr_rgb(pixels, reconstruction[..., :3])
    drawn = labels != 0
    return psnr_rgb(pixels[drawn], reconstruction[..., :3][drawn])

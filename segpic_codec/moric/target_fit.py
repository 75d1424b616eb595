"""A --bpp, --size or --psnr target in one MoRIC encode: the λ controller's goal
(`controller_for`), the corrections of a file that missed (`correction`), and
the last-resort trim of its latents (`meet`).

The controller (`training.rate_control`) brings the run near its goal. The
file is then coded and measured (a size on the file itself, a PSNR on the
reconstruction); outside its window (3 % below a size limit; a PSNR a little
under or over its goal) the encode trains on for a tenth more steps at the λ
the miss asks for, at most twice. A size still above its limit is then
trimmed: the latents are rounded with a dead zone, x -> sign(x) floor(|x| +
1/2 - d), which moves values toward zero, where every ARM distribution has its
mass; a bisection over d finds the smallest d whose coded file fits, so the
answer never overshoots. A PSNR far above its goal is trimmed the same way to
just above it.
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
from .networks.model import MoricModel
from .training.rate_control import PSNR_SLOPE, RATE_SLOPE, Anchor, Goal, LambdaController
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


# where a run aims: a size this share of the limit (the window is the 3 % below
# it), a PSNR this many dB above the goal (the window is +-PSNR_TOLERANCE)
AIM_SIZE = 0.985
AIM_OVER_PSNR = 0.04
# a file outside its window is corrected (`correction`): trained on at a new
# λ for this share of the steps done (at least MIN_CORRECTION_STEPS), at most
# MAX_CORRECTIONS times; a size still above the limit is then trimmed
SIZE_WINDOW = 0.97
PSNR_WINDOW = (-0.08, 0.14)  # dB around the goal that need no correction
CORRECTION_SHARE = 0.1
MIN_CORRECTION_STEPS = 8
MAX_CORRECTIONS = 2
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


def correction(request: TargetRequest, model: MoricModel, target: torch.Tensor,
               coded: tuple[layout.Header, list[bytes], np.ndarray]) -> float | None:
    """The factor on λ that would bring a coded file into its target's window, or
    None where it is inside: for a size, the latents' bytes against what the
    aim leaves them (bpp goes about as λ^-RATE_SLOPE); for a PSNR, the miss in
    dB over PSNR_SLOPE. Only plain rounding is measured (the trim comes after)."""
    goal = request.target
    header, streams, _ = coded
    if goal.rate:
        size = request.file_size(layout.pack(header), streams)
        latent = sum(len(s) for s in streams[-NUM_GRIDS:])
        return size_correction(size, latent, goal.max_bytes(model.height * model.width))
    return psnr_correction(_float_psnr(model, target, model.latents.integers()), goal.value)


def size_correction(size: int, latent_bytes: int, limit: int) -> float | None:
    """λ's factor for a file of `size` bytes (`latent_bytes` of them latents)
    against a size limit; None inside the window."""
    if SIZE_WINDOW * limit <= size <= limit:
        return None
    room = AIM_SIZE * limit - (size - latent_bytes)
    if room <= 0:  # the rest of the file fills the limit: the largest λ, if latents can go
        return None if latent_bytes == 0 else math.inf
    return (max(latent_bytes, 1.0) / room) ** (1.0 / RATE_SLOPE)


def psnr_correction(psnr: float, goal: float) -> float | None:
    """λ's factor for a PSNR against its goal (dB); None inside the window."""
    miss = psnr - goal
    if PSNR_WINDOW[0] <= miss <= PSNR_WINDOW[1]:
        return None
    return math.exp((miss - AIM_OVER_PSNR) / PSNR_SLOPE)


def _float_psnr(model: MoricModel, target: torch.Tensor, ints: torch.Tensor) -> float:
    with torch.no_grad():
        q = ints.to(torch.float32)
        error = model.squared_error(q, target, model.dense_latents(q))
    return psnr_from_mse(float(error) / (3 * model.drawn_pixels), peak=1.0)


def meet(request: TargetRequest, model: MoricModel, target: torch.Tensor, scaled: torch.Tensor,
         assemble: Callable, plain: tuple[layout.Header, list[bytes], np.ndarray]
          ) -> tuple[layout.Header, list[bytes], np.ndarray, bool]:
    """Trim the latents of a file still above its target after the corrections: a
    size measured on the file itself (never above it after this), a PSNR more
    than PSNR_TOLERANCE above the goal on the float reconstruction (the integer
    one is within a few hundredths of a dB). Dead-zone rounding costs far more
    distortion per bit than a higher λ: it is the last resort, for the last
    few per cent."""
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
        ok = (lambda v: v >= goal.value + AIM_OVER_PSNR)  # noqa: E731
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

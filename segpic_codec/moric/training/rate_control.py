"""Steering λ to a rate or a PSNR goal within one encode (`--bpp`, `--size`,
`--psnr` with MoRIC).

Where a MoRIC encode ends is known only at its end: at a fixed λ the
hard-rounded rate falls through most of the run (the latents learn to be
cheap) while the PSNR rises and then levels off. So the controller does not
chase the rate it measures; it predicts the end's from it, as the measured
value times (rate) or plus (PSNR) the drift still to come at that progress of
the budget (`RATE_DRIFT`, `PSNR_DRIFT`, measured on hard-rounded traces:
`bench/results/targets/README.md`). It moves log λ by the predicted miss over
the goal's sensitivity to log λ (bpp goes about as λ^-0.5 on Kodak, PSNR
about 2.2 dB per unit of log λ), damped, at most `MAX_MOVE` per update, and
holds λ from `hold` on: the rest of the run and the final phase train at one
λ, so the best-state tracking compares like with like.

The encode aims a little past the goal (a little more rate, a little more
PSNR): the codec then trims the coded latents down to it (`moric.target_fit`),
which can lower the rate but never raise it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .recipe import LAMBDA_AT_MAX, LAMBDA_AT_MIN

# end value over (rate) or minus (PSNR) the value measured at this progress of
# the budget, at a fixed λ
_PROGRESS = (0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 1.00)
RATE_DRIFT = (0.43, 0.54, 0.67, 0.755, 0.82, 0.87, 0.92, 0.95, 0.977, 1.00)
PSNR_DRIFT = (6.4, 3.6, 1.36, 0.78, 0.46, 0.26, 0.13, 0.065, 0.02, 0.00)
# before this progress the drift differs most between images (the PSNR's by
# dB): the controller moves by half as much
EARLY = 0.2
RATE_SLOPE = 0.5  # -d ln(bpp) / d ln(λ)
PSNR_SLOPE = 2.2  # -d PSNR / d ln(λ), dB
MAX_MOVE = 0.5  # the largest change of ln λ in one update
# the first guess of λ: where an image ends (latent bpp, PSNR) after a
# medium encode at λ = e^ANCHOR_LN_LAMBDA (quality 2.5), from which the slopes
# above extrapolate; by default a Kodak image of middling detail
ANCHOR_LN_LAMBDA = -5.5


@dataclass(frozen=True)
class Anchor:
    bpp: float  # latent bits per pixel
    psnr: float  # dB


MIDDLING = Anchor(0.30, 29.2)


@dataclass(frozen=True)
class Goal:
    """What the run steers to: `kind` rate (latent bits per pixel: the file's
    budget less what is not latents, which may depend on λ, hence a function of
    λ) or psnr (dB)."""

    kind: Literal["rate", "psnr"]
    value: Callable[[float], float]  # λ -> latent bpp, or a constant dB
    # (predicted end value, λ) -> what the progress bar shows, in the user's terms
    describe: Callable[[float, float], str] | None = None


@dataclass
class LambdaController:
    goal: Goal
    anchor: Anchor = MIDDLING  # where the image would end at the anchor's λ
    lmbda: float = 0.0  # the λ now; 0: the first guess
    start: float = 0.05  # progress of the budget at the first update
    hold: float = 0.70  # progress from which λ stays
    every: float = 0.05  # progress between updates
    gain: float = 0.5  # of the predicted correction, per update (the response lags)
    predicted: float | None = None  # the end value last predicted (bpp or dB)
    history: list[tuple[float, float, float, float]] = field(default_factory=list)
    _next: float = 0.0

    def __post_init__(self) -> None:
        if self.lmbda <= 0:
            self.lmbda = first_lambda(self.goal, self.anchor)
        self._next = self.start

    def due(self, progress: float) -> bool:
        return self._next <= progress < self.hold + 1e-9

    def update(self, bpp: float, psnr: float, progress: float) -> float:
        """A hard-rounded evaluation (latent bpp, PSNR) at `progress` -> the λ to
        train with from now on."""
        self._next = progress + self.every
        if self.goal.kind == "rate":
            self.predicted = bpp * float(np.interp(progress, _PROGRESS, RATE_DRIFT))
            # a goal at or below zero (the rest of the file fills the budget): λ's top
            goal = max(self.goal.value(self.lmbda), 1e-6)
            miss = math.log(max(self.predicted, 1e-6) / goal) / RATE_SLOPE
        else:
            self.predicted = psnr + float(np.interp(progress, _PROGRESS, PSNR_DRIFT))
            miss = (self.predicted - self.goal.value(self.lmbda)) / PSNR_SLOPE
        gain = self.gain * (0.5 if progress < EARLY else 1.0)
        move = min(max(gain * miss, -MAX_MOVE), MAX_MOVE)
        self.lmbda = clamp_lambda(self.lmbda * math.exp(move))
        self.history.append((round(progress, 4), bpp, psnr, self.lmbda))
        return self.lmbda


    def status(self) -> str | None:
        """The goal and where the run is heading, for the progress bar."""
        if self.predicted is None or self.goal.describe is None:
            return None
        return self.goal.describe(self.predicted, self.lmbda)


def clamp_lambda(lmbda: float) -> float:
    """Inside the quality scale's λ range (so the file's quality field holds it)."""
    return min(max(lmbda, LAMBDA_AT_MAX), LAMBDA_AT_MIN)


def first_lambda(goal: Goal, anchor: Anchor = MIDDLING) -> float:
    """The λ that ends at the goal if the image ends at `anchor` at the anchor's λ."""
    if goal.kind == "rate":
        bpp = goal.value(math.exp(ANCHOR_LN_LAMBDA))
        ln = ANCHOR_LN_LAMBDA - math.log(max(bpp, 1e-6) / anchor.bpp) / RATE_SLOPE
    else:
        ln = ANCHOR_LN_LAMBDA - (goal.value(0.0) - anchor.psnr) / PSNR_SLOPE
    return clamp_lambda(math.exp(ln))

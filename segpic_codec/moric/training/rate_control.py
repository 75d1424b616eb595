"""Steering λ to a rate or a PSNR goal within one encode (`--bpp`, `--size`,
`--psnr` with MoRIC).

Where a MoRIC encode ends is known only at its end: at a fixed λ the
hard-rounded rate falls through most of the run (the latents learn to be
cheap) while the PSNR rises and then levels off. So the controller does not
chase the rate it measures; it predicts the end's from it, as the measured
value times (rate) or plus (PSNR) the drift still to come at that progress of
the run (`Drift`, fitted to hard-rounded traces:
`bench/results/targets/README.md`). How far a run still moves depends on how
it started: one from zero latents falls far (`PLAIN`), one that a coarse start
(`coarse_start`) has already taught much less (`COARSE`), so each has its
table.

A move of log λ moves the end less the later it is made (the learning rate's
cosine runs out: `leverage`), and only about half of that shows by the next
update (`UNSEEN`). The controller counts its own moves' effect still to show
into the prediction, and what the prediction then changes by between updates
is the image's own error against the table, which keeps going (`TREND`).
It moves log λ by the predicted miss over the leverage left, damped, at most
`MAX_MOVE` per update, and holds λ from `hold` on: the rest of the run and the
final phase train at one λ, so the best-state tracking compares like with like.

What the encoder aims at, and how it judges the file, is `moric.target_fit`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .recipe import QUALITY_MAX, QUALITY_MIN, Recipe, quality_to_lambda


@dataclass(frozen=True)
class Drift:
    """The drift still to come at each progress of a run at a fixed λ, fitted
    to hard-rounded traces (`python scripts/moric_drift_fit.py TRACES`): ln(end
    bpp / bpp) = A + S ln(bpp) and end PSNR - PSNR = C + T (PSNR - 30), each
    coefficient tabled at `progress` of the run's own steps."""

    progress: tuple[float, ...]
    a: tuple[float, ...]
    s: tuple[float, ...]
    c: tuple[float, ...]
    t: tuple[float, ...]
    # the range believed of ln(end bpp / bpp) and of end PSNR - PSNR: the way
    # these runs move (a plain run's rate only falls), and no further than the
    # traces went
    rate_moves: tuple[float, float] = (-math.inf, 0.0)
    psnr_moves: tuple[float, float] = (0.0, math.inf)

    def rate_at_end(self, bpp: float, progress: float) -> float:
        """The latent bpp a run that measures `bpp` at `progress` ends at, λ held."""
        a, s = (float(np.interp(progress, self.progress, k)) for k in (self.a, self.s))
        move = a + s * math.log(max(bpp, 1e-6))
        return bpp * math.exp(min(max(move, self.rate_moves[0]), self.rate_moves[1]))

    def psnr_at_end(self, psnr: float, progress: float) -> float:
        """The PSNR a run that measures `psnr` at `progress` ends at, λ held."""
        c, t = (float(np.interp(progress, self.progress, k)) for k in (self.c, self.t))
        move = c + t * (psnr - 30.0)
        return psnr + min(max(move, self.psnr_moves[0]), self.psnr_moves[1])


_TWENTIETHS = tuple(round(0.05 * i, 2) for i in range(1, 21))
# A plain run (its latents from zero, or from `latent_init`): four traces from
# 0.24 to 1.48 bpp (bench/results/targets/drift-traces.jsonl). The higher the
# rate, the less it still falls; the higher the PSNR, the more it still rises.
PLAIN = Drift(
    _TWENTIETHS,
    a=(-0.4272, -0.2993, -0.239, -0.1797, -0.144, -0.1151, -0.0933, -0.0739, -0.058, -0.046,
       -0.0362, -0.0272, -0.0206, -0.0159, -0.0116, -0.0076, -0.0047, -0.0019, -0.0002, 0.0),
    s=(1.8521, 0.6841, 0.406, 0.3178, 0.2535, 0.2026, 0.1686, 0.1402, 0.1141, 0.0934, 0.0736,
       0.056, 0.0399, 0.0313, 0.0194, 0.0136, 0.0067, 0.0018, 0.0007, 0.0),
    c=(5.309, 4.758, 2.604, 1.549, 1.093, 0.797, 0.605, 0.443, 0.326, 0.234, 0.157, 0.119,
       0.084, 0.056, 0.039, 0.017, 0.009, 0.004, 0.0, 0.0),
    t=(-0.5565, 0.1752, 0.4045, 0.296, 0.237, 0.1956, 0.1636, 0.1333, 0.1093, 0.0876, 0.0716,
       0.0522, 0.0392, 0.0289, 0.0191, 0.012, 0.0063, 0.0026, 0.0, 0.0))

# A run after a coarse start (`coarse_start`): its latents start where the
# half-size run left them, so its rate falls far less than a plain run's (by
# whose table a coarse-started run would end at a fifteenth of the rate of its
# first update, not at 0.7 of it), and at high rates it rises while its finest
# grid fills in. Five traces from 0.07 to 1.64 bpp, 440 steps
# (bench/results/targets/drift-traces-coarse.jsonl).
COARSE = Drift(
    (0.05, 0.099, 0.149, 0.198, 0.248, 0.297, 0.347, 0.397, 0.446, 0.496, 0.545, 0.595, 0.644,
     0.694, 0.743, 0.793, 0.843, 0.892, 0.942, 0.991),
    a=(0.0098, -0.0734, -0.0878, -0.0746, -0.0646, -0.0563, -0.047, -0.0396, -0.0362, -0.0298,
       -0.0258, -0.02, -0.0151, -0.0129, -0.0093, -0.0059, -0.0032, -0.0014, -0.0003, -0.0001),
    s=(0.3513, 0.2089, 0.1532, 0.1336, 0.1116, 0.0928, 0.0811, 0.0671, 0.0472, 0.0399, 0.0286,
       0.0257, 0.0207, 0.0139, 0.0106, 0.0061, 0.0035, 0.0017, -0.0001, -0.0),
    c=(3.187, 1.758, 1.139, 0.888, 0.693, 0.582, 0.469, 0.374, 0.308, 0.236, 0.193, 0.133, 0.1,
       0.069, 0.042, 0.029, 0.018, 0.008, 0.001, -0.0),
    t=(0.3177, 0.2016, 0.1149, 0.0784, 0.0574, 0.0472, 0.04, 0.0327, 0.0289, 0.0239, 0.018, 0.0159,
       0.0133, 0.01, 0.0076, 0.0038, 0.0019, 0.0014, 0.0006, 0.0003),
    rate_moves=(-1.5, 0.5))

# before this progress the drift differs most between images (the PSNR's by
# dB): the controller moves by half as much
EARLY = 0.2
# How a move of ln λ at progress p moves the run's end: ln(latent bpp) by
# -RATE_RESPONSE x leverage(p), the PSNR by -PSNR_RESPONSE x leverage(p) dB;
# the leverage falls from 1 at the start to nothing at LEVERAGE_GONE (held
# above LEVERAGE_MIN). Step responses of 440-step coarse-started runs, λ x 1.5
# from an update on (`bench/results/targets/README.md`, "Step responses"):
# kodim05 at quality 2.5 from 31 % and from 52 %: the end's latents 14.2 % and
# 8.1 % smaller, -0.38 and -0.21 per unit of ln λ (this model: -0.39, -0.22),
# -1.75 and -1.08 dB (-1.55, -0.85); kodim23 at quality 4.8 from 42 %: -0.21
# (-0.30) and -0.87 dB (-1.20). At the start, the fixed-λ curves' slopes (0.68
# in ln bpp, 2.1-2.8 dB: FIRST_RATE, FIRST_PSNR).
RATE_RESPONSE = 0.66
PSNR_RESPONSE = 2.6
LEVERAGE_GONE = 0.78
LEVERAGE_MIN = 0.09
# of a move's effect on the end, the share not yet in the next update's
# measurement, and so on per update (the steps above: 49 %, 35 % and 41 % after
# one update, 28 %, 15 % and 22 % after two)
UNSEEN = 0.45
# the image's error against the drift table, still to come, per its change
# between two updates, at progress TREND_AT (the table's error decays over
# about a tenth of the run: 1.4-2.6 from 16 % to 58 % of 35 steered size
# encodes, 0.15-0.3 after, `python scripts/moric_step_response.py closed-loop
# ROWS`; the PSNR's is taken to be the same). Late, a change between
# updates is more noise than trend, and a move has little leverage: at 1.5
# there, kodim15 at 0.25 bpp read a 2 % drop at its last update as 5 % and
# moved λ by -31 % (3bb6072), its file 0.33 dB below the fixed-λ curve.
TREND = (1.5, 1.5, 0.4)
TREND_AT = (0.0, 0.55, 0.62)
MAX_MOVE = 0.5  # the largest change of ln λ in one update
# Where an image's measurements answer a move faster than UNSEEN says, the
# remainder reads as a trend the other way and the moves swing (kodim01 at
# 0.25 bpp, e32927d: ln λ -0.19, +0.19, -0.26, +0.37, then ±0.5 to the end,
# 91.5 % of its limit): each reversal of a move larger than MOVE_NOISE halves
# the moves from then on; moves the same way restore them by √2 each.
DAMP_ON_REVERSAL = 0.5
MOVE_NOISE = 0.03
# the first guess of λ: where an image ends (latent bpp, PSNR) after a
# medium encode at λ = e^ANCHOR_LN_LAMBDA (quality 2.5), from which its curves
# extrapolate, in u = ln λ - ANCHOR_LN_LAMBDA: ln(bpp) by b u + c u² with
# (b, c) = FIRST_RATE, PSNR by b u + c u² with b = FIRST_PSNR[0] +
# FIRST_PSNR[1] (anchor PSNR - 30) (a detailed image gains more dB per unit of
# ln λ) and c = FIRST_PSNR[2]. Fitted to the medium encoder's fixed-λ files at
# qualities 1..4.7 (u from 1.6 to -2.3) on eight Kodak images, one level per
# image (`python scripts/moric_first_guess_fit.py
# bench/results/moric-time/now-ec928e6/points-440.jsonl`): ln(bpp) within 0.25
# of the fit, PSNR within 0.56 dB; the controller corrects the rest. The
# controller's own slopes (above) stay lower: late in a run λ moves the end
# less than it moves a whole run.
ANCHOR_LN_LAMBDA = -5.5
FIRST_RATE = (-0.6755, -0.0356)
FIRST_PSNR = (-2.405, 0.159, 0.0655)
FIRST_PSNR_SLOPE_MAX = -1.0  # the PSNR curve keeps falling, however smooth the image
FIRST_U_RANGE = (-3.5, 3.0)  # the fitted range and a little more; beyond, straight lines


def leverage(progress: float) -> float:
    """How much of the full-run response a move of ln λ made at `progress` still
    has on the end (RATE_RESPONSE)."""
    return max(1.0 - progress / LEVERAGE_GONE, LEVERAGE_MIN)


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
    # of the predicted correction, per update (the leverage and the trend are
    # estimates; what an update leaves, the next one corrects); the recipe's
    # field is its one home
    gain: float = Recipe.target_gain
    drift: Drift = PLAIN  # how the run still moves (`COARSE` after a coarse start)
    predicted: float | None = None  # the end value last predicted (bpp or dB)
    # (progress, bpp, PSNR, λ after) of each update: how the run was steered
    history: list[tuple[float, float, float, float]] = field(default_factory=list)
    _next: float = 0.0
    # in the goal's units (ln bpp, or dB): the effect on the end of the moves
    # made that the measurements do not show yet, and the last update's estimate
    # of the end with its move counted in full
    _unseen: float = 0.0
    _estimate: float | None = None
    _damping: float = 1.0  # see DAMP_ON_REVERSAL
    _last_move: float = 0.0

    def __post_init__(self) -> None:
        if self.lmbda <= 0:
            self.lmbda = first_lambda(self.goal, self.anchor)
        self._next = self.start

    def due(self, progress: float) -> bool:
        return self._next <= progress < self.hold + 1e-9

    def last_update(self, progress: float) -> bool:
        """Whether an update at `progress` is the last before λ is held."""
        return progress + self.every > self.hold + 1e-9

    def update(self, bpp: float, psnr: float, progress: float) -> float:
        """A hard-rounded evaluation (latent bpp, PSNR) at `progress` -> the λ to
        train with from now on."""
        self._next = progress + self.every
        if self.goal.kind == "rate":
            # in ln bpp; a goal at or below zero (the rest of the file fills the
            # budget): λ's top
            measured = math.log(max(self.drift.rate_at_end(bpp, progress), 1e-6))
            goal = math.log(max(self.goal.value(self.lmbda), 1e-6))
            response = RATE_RESPONSE
        else:
            measured = self.drift.psnr_at_end(psnr, progress)
            goal = self.goal.value(self.lmbda)
            response = PSNR_RESPONSE
        self._unseen *= UNSEEN
        estimate = measured + self._unseen
        predicted = estimate
        if self._estimate is not None:
            predicted += float(np.interp(progress, TREND_AT, TREND)) * (estimate -
                                                                         self._estimate)
        self.predicted = math.exp(predicted) if self.goal.kind == "rate" else predicted
        gain = self.gain * (0.5 if progress < EARLY else 1.0)
        lever = response * leverage(progress)
        move = gain * (predicted - goal) / lever
        if move * self._last_move < 0 and min(abs(move), abs(self._last_move)) > MOVE_NOISE:
            self._damping *= DAMP_ON_REVERSAL
        elif move * self._last_move > 0:
            self._damping = min(1.0, self._damping / DAMP_ON_REVERSAL ** 0.5)
        move = min(max(self._damping * move, -MAX_MOVE), MAX_MOVE)
        self._last_move = move
        old = self.lmbda
        self.lmbda = clamp_lambda(self.lmbda * math.exp(move))
        effect = -lever * math.log(self.lmbda / old)
        self._unseen += effect
        self._estimate = estimate + effect
        self.history.append((round(progress, 4), bpp, psnr, self.lmbda))
        return self.lmbda

    def status(self) -> str | None:
        """The goal and where the run is heading, for the progress bar."""
        if self.predicted is None or self.goal.describe is None:
            return None
        return self.goal.describe(self.predicted, self.lmbda)


# λ may be steered one quality unit beyond either end of the scale (the
# scale's log-linear law extended): at 0.25 bpp some Kodak images need more
# than quality 1's λ, and at 1 bpp or 36 dB some need less than quality 6's
# (kodim23 at 1 bpp stopped at 80 % of its limit, kodim08 at 36 dB 0.69 dB
# short). Such a file's header says quality 1 or 6, the end of the scale
# (`lambda_to_quality`); the decoder never needs λ.
STEERED_LAMBDA_MAX = quality_to_lambda(QUALITY_MIN - 1.0)
STEERED_LAMBDA_MIN = quality_to_lambda(QUALITY_MAX + 1.0)


def clamp_lambda(lmbda: float) -> float:
    """Inside the λ range a target may steer through."""
    return min(max(lmbda, STEERED_LAMBDA_MIN), STEERED_LAMBDA_MAX)


def first_lambda(goal: Goal, anchor: Anchor = MIDDLING) -> float:
    """The λ at which an image that ends at `anchor` at the anchor's λ ends at
    the goal, by the first-guess curves (FIRST_RATE, FIRST_PSNR)."""
    if goal.kind == "rate":
        bpp = max(goal.value(math.exp(ANCHOR_LN_LAMBDA)), 1e-6)
        u = _solve_curve(FIRST_RATE, math.log(bpp / anchor.bpp))
    else:
        b0, b1, c = FIRST_PSNR
        slope = min(b0 + b1 * (anchor.psnr - 30.0), FIRST_PSNR_SLOPE_MAX)
        u = _solve_curve((slope, c), goal.value(0.0) - anchor.psnr)
    return clamp_lambda(math.exp(ANCHOR_LN_LAMBDA + u))


def _solve_curve(curve: tuple[float, float], change: float) -> float:
    """The u at which b u + c u² = `change`, for a curve falling through the
    fitted range (b < 0, and the curve's turn outside the range); beyond the
    range the curve goes on straight, at its slope at the range's ends."""
    b, c = curve
    lo, hi = FIRST_U_RANGE

    def value(u: float) -> float:
        return b * u + c * u * u

    for end in (lo, hi):
        slope = b + 2 * c * end
        if (end == lo and change >= value(lo)) or (end == hi and change <= value(hi)):
            return end + (change - value(end)) / slope
    if abs(c) < 1e-12:
        return change / b
    # of the two roots, the one inside the range (the curve is monotonic there)
    root = math.sqrt(max(b * b + 4 * c * change, 0.0))
    return min(((-b + root) / (2 * c), (-b - root) / (2 * c)),
               key=lambda u: 0.0 if lo <= u <= hi else min(abs(u - lo), abs(u - hi)))

"""Rate and quality targets: `--bpp B`, `--size 40k`, `--psnr P` (and the same
keywords in Python), met by trial encodes over a codec's quality scale.

A size target counts the whole file, metadata boxes included: it is what lands
on disk or goes over the wire (`--bpp B` is the size B x pixels / 8 bytes).
Sizes are in bytes; k and M are powers of 1000 (cwebp's -size is in bytes too),
Ki and Mi powers of 1024.

The search (`search`) assumes the size and the PSNR grow with the quality. It
interpolates (log bytes, or dB, against quality) inside a bracket that it keeps
around the answer, falling back to halving when interpolation stalls, and stops
when the answer is pinned to one step of the codec's quality grid or after
`MAX_TRIALS` encodes. Torch-free: the codec hands in its encode as a function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from .errors import CodecError

Kind = Literal["bpp", "size", "psnr"]
KINDS: tuple[Kind, ...] = ("bpp", "size", "psnr")
MAX_TRIALS = 8
# a codec that meets a PSNR in one encode (MoRIC, `steered_targets`) lands near
# the goal, not on a grid above it: within this many dB counts as met
PSNR_TOLERANCE = 0.15
MAX_PSNR = 100.0  # the cap of quality_metrics.psnr: a target above it is never met
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(k|ki|m|mi)?b?\s*$", re.IGNORECASE)
_SCALE = {None: 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2}
# first steps before two trials allow interpolating: from the shipped SegPIC
# weights on Kodak (bench/results/kodak), ln(bytes) and dB per quality unit
_PRIOR_SLOPE = {"size": 0.21, "psnr": 0.35}

T = TypeVar("T")


class TargetNotMet(CodecError):
    """No quality meets the target. `closest`: the encode nearest to it (the lowest
    quality for a size, the highest for a PSNR), which --best-effort writes."""

    def __init__(self, message: str, closest: object = None):
        super().__init__(message)
        self.closest = closest


@dataclass(frozen=True)
class Target:
    kind: Kind
    value: float  # bits per pixel, bytes, or dB

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CodecError(f"unknown target {self.kind!r}; one of {', '.join(KINDS)}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise CodecError(f"--{self.kind} must be a positive number, got {self.value:g}")
        if self.kind == "psnr" and self.value > MAX_PSNR:
            raise CodecError(f"--psnr {self.value:g}: PSNR is capped at {MAX_PSNR:g} dB")

    @property
    def rate(self) -> bool:
        """A size (bpp or bytes), as opposed to a quality (PSNR)."""
        return self.kind != "psnr"

    def max_bytes(self, pixels: int) -> int:
        """The largest file that meets a rate target."""
        return int(self.value) if self.kind == "size" else math.floor(self.value * pixels / 8)

    def __str__(self) -> str:
        return {"bpp": f"{self.value:g} bpp", "size": f"{int(self.value)} bytes",
                "psnr": f"{self.value:g} dB PSNR"}[self.kind]


def parse_size(text: str | int | float) -> int:
    """'40k' -> 40000, '1.5M' -> 1500000, '64Ki' -> 65536, '5000' -> 5000 (bytes;
    a trailing B is allowed)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        found = _SIZE.match(str(text))
        if not found:
            raise CodecError(f"{text!r} is not a size in bytes (e.g. 40000, 40k, 1.5M, 64Ki)")
        unit = found.group(2).lower() if found.group(2) else None
        value = float(found.group(1)) * _SCALE[unit]
    if not (math.isfinite(value) and value >= 1):
        raise CodecError(f"size {text!r}: at least 1 byte")
    return int(value)


def from_options(quality: float | None = None, bpp: float | None = None,
                 size: str | int | None = None, psnr: float | None = None) -> Target | None:
    """The one target given, None for none; more than one (or one with a quality)
    is an error."""
    given = [(k, v) for k, v in (("bpp", bpp), ("size", size), ("psnr", psnr)) if v is not None]
    names = [f"--{k}" for k, _ in given] + (["--quality"] if quality is not None else [])
    if len(names) > 1:
        raise CodecError(f"use one of --quality, --bpp, --size, --psnr, not {' and '.join(names)}")
    if not given:
        return None
    kind, value = given[0]
    return Target(kind, float(parse_size(value) if kind == "size" else value))


@dataclass(frozen=True)
class QualityGrid:
    """A codec's quality scale: lowest..highest in steps of `step`."""

    lowest: float
    highest: float
    step: float

    def snap(self, quality: float) -> float:
        steps = round((quality - self.lowest) / self.step)
        # rounded to 9 places: 1 + 102 x 0.025 is 3.5500000000000003 otherwise
        return round(min(self.highest, max(self.lowest, self.lowest + steps * self.step)), 9)


@dataclass
class Trial(Generic[T]):
    quality: float
    value: float  # bytes or dB
    encoded: T


@dataclass
class Outcome(Generic[T]):
    best: Trial[T]  # the answer, or the closest trial when `met` is False
    met: bool
    trials: int


def search(encode: Callable[[float], Trial[T]], target: Target, grid: QualityGrid,
           pixels: int, max_trials: int = MAX_TRIALS) -> Outcome[T]:
    """The highest quality whose file meets a rate target, or the lowest whose PSNR
    meets a PSNR target. `encode(quality)` makes one trial (value: bytes or dB)."""
    rate = target.rate
    goal = float(target.max_bytes(pixels)) if rate else target.value

    def ok(trial: Trial[T]) -> bool:
        return trial.value <= goal if rate else trial.value >= goal

    def scale(value: float) -> float:  # where value is about linear in the quality
        return math.log(max(value, 1.0)) if rate else value

    done: dict[float, Trial[T]] = {}
    # the bracket: `low` has the value below the goal, `high` above it (None: not
    # yet known, i.e. the grid's end may still be the answer)
    low: Trial[T] | None = None
    high: Trial[T] | None = None

    def run(quality: float) -> Trial[T]:
        nonlocal low, high
        trial = done.setdefault(quality, encode(quality))
        below = ok(trial) if rate else not ok(trial)
        if below and (low is None or quality > low.quality):
            low = trial
        if not below and (high is None or quality < high.quality):
            high = trial
        return trial

    # the default-quality middle first: most targets land near it
    run(grid.snap((grid.lowest + grid.highest) / 2))
    while len(done) < max_trials:
        lo_q = low.quality if low else grid.lowest - grid.step
        hi_q = high.quality if high else grid.highest + grid.step
        if hi_q - lo_q <= grid.step * 1.5:
            break  # adjacent: the answer is pinned
        if low is None and len(done) == max_trials - 1:
            guess = grid.lowest  # the last trial: learn whether the target can be met
        elif high is None and len(done) == max_trials - 1:
            guess = grid.highest
        else:
            guess = _next_guess(low, high, list(done.values()), scale, goal, target, grid)
        # keep strictly inside the bracket (and on the grid)
        guess = min(max(grid.snap(guess), lo_q + grid.step), hi_q - grid.step)
        guess = grid.snap(guess)
        if guess in done:
            break
        run(guess)
    if rate:
        best, met = (low, True) if low else (min(done.values(), key=lambda t: t.quality), False)
    else:
        best, met = (high, True) if high else (max(done.values(), key=lambda t: t.quality), False)
    met = met and ok(best)
    return Outcome(best, met, len(done))


def _next_guess(low: Trial | None, high: Trial | None, tried: list[Trial],
                scale: Callable[[float], float], goal: float, target: Target,
                grid: QualityGrid) -> float:
    """Interpolate between the bracket's ends. With one end only, extrapolate by
    the slope of the last two trials (the prior slope after one), aiming a little
    past the goal so that the next trial closes the bracket. Halve instead when
    interpolation would land next to an end (the curve is flatter or steeper there
    than a line says)."""
    g = scale(goal)
    if low is not None and high is not None:
        span = scale(high.value) - scale(low.value)
        width = high.quality - low.quality
        if span <= 0:
            return (low.quality + high.quality) / 2
        guess = low.quality + (g - scale(low.value)) / span * width
        # a guess in the outer tenths of the bracket: halve its distance to the
        # middle, so a curved stretch cannot stall the search at one end
        if not 0.1 * width <= guess - low.quality <= 0.9 * width:
            guess = (guess + (low.quality + high.quality) / 2) / 2
        return guess
    end = low if low is not None else high
    assert end is not None
    prior = _PRIOR_SLOPE["size" if target.rate else "psnr"]
    slope = prior
    if len(tried) >= 2:
        a, b = tried[-2], tried[-1]
        if a.quality != b.quality:
            measured = (scale(b.value) - scale(a.value)) / (b.quality - a.quality)
            slope = min(max(measured, prior / 8), prior * 8)
    guess = end.quality + 1.15 * (g - scale(end.value)) / slope
    # beyond the grid: try its end (the answer, or proof that none exists)
    return min(max(guess, grid.lowest), grid.highest)

"""Probability tables of the quantised Laplace for exact entropy coding.

The integer ARM outputs a mean and a log-scale with 8 fractional bits. They are
reduced to (integer part of the mean m, mean fraction index f, log-scale index
j); the probability of symbol x is then TABLE[f, j, x - m + A] (A = alphabet
size), a window of one precomputed row. Only basic IEEE operations (+ - * /,
rint, ldexp) build the table, in a fixed order, so every machine builds the
same bits; numpy's own exp may differ across CPUs and builds.
Torch-free.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FRACTION_BITS = 8  # fractional bits of the ARM outputs (mean and log-scale)
MEAN_STEPS = 32  # the mean's fraction is quantised to 1/32
MEAN_SHIFT = FRACTION_BITS - 5  # 8 fractional bits -> 32 steps
LOG_SCALE_MIN = -4.5  # log of the Laplace scale, natural log
LOG_SCALE_MAX = 5.0
LOG_SCALE_STEPS_PER_UNIT = 16
LOG_SCALE_OFFSET = 4.0  # log_scale = raw ARM output - 4: small scales at initialisation
NUM_LOG_SCALES = int(round((LOG_SCALE_MAX - LOG_SCALE_MIN) * LOG_SCALE_STEPS_PER_UNIT))
PROBABILITY_FLOOR = 2.0**-16  # the training rate's floor, also applied to the table

_LN2_HI = 0.693145751953125  # ln 2 split in two so k * _LN2_HI is exact
_LN2_LO = 1.42860682030941723212e-06


def exp_deterministic(x: np.ndarray) -> np.ndarray:
    """exp(x) for x <= 0 from basic operations only (about 1e-15 relative error)."""
    x = np.maximum(np.asarray(x, dtype=np.float64), -700.0)
    k = np.rint(x / 0.6931471805599453)
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln2 / 2
    # Taylor series of exp(r) to degree 13, Horner form (|error| < 1e-16 on |r| < 0.35)
    poly = np.ones_like(r)
    for n in range(13, 0, -1):
        poly = 1.0 + poly * r / n
    return np.ldexp(poly, k.astype(np.int64))


def _laplace_cdf(t: np.ndarray, scale: np.ndarray) -> np.ndarray:
    half_tail = 0.5 * exp_deterministic(-np.abs(t) / scale)
    return np.where(t < 0, half_tail, 1.0 - half_tail)


@lru_cache(maxsize=4)
def build_table(alphabet_size: int) -> np.ndarray:
    """TABLE[f, j, k]: P(x - m = k - A) for mean fraction f and log-scale j,
    shape (MEAN_STEPS, NUM_LOG_SCALES, 2A + 1), float64, rows unnormalised
    (the range coder renormalises each window)."""
    a = alphabet_size
    frac = (np.arange(MEAN_STEPS, dtype=np.float64) + 0.5) / MEAN_STEPS
    log_scale = LOG_SCALE_MIN + (np.arange(NUM_LOG_SCALES, dtype=np.float64) + 0.5) \
        / LOG_SCALE_STEPS_PER_UNIT
    # the scale itself with the same exp: log_scale < 0 or > 0, exp(x) = 1 / exp(-x)
    neg = exp_deterministic(-np.abs(log_scale))
    scale = np.where(log_scale <= 0, neg, 1.0 / neg)
    offsets = np.arange(-a, a + 1, dtype=np.float64)
    t = offsets[None, None, :] - frac[:, None, None]
    s = scale[None, :, None]
    probability = _laplace_cdf(t + 0.5, s) - _laplace_cdf(t - 0.5, s)
    table = np.maximum(probability, PROBABILITY_FLOOR)
    table.setflags(write=False)
    return table


def table_indices(mean_fp: np.ndarray, log_scale_raw_fp: np.ndarray, low: int, high: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, f, j) from the integer ARM outputs (8 fractional bits, int64 arrays).

    m is the mean's integer part clamped to [low - 1, high + 1] so every window
    of the table row stays inside it."""
    one = 1 << FRACTION_BITS
    # np.minimum/np.maximum, not np.clip: this runs once per wave, and np.clip's
    # per-call cost is several times theirs on these short arrays
    m = np.minimum(np.maximum(mean_fp >> FRACTION_BITS, low - 1), high + 1)
    f = (mean_fp & (one - 1)) >> MEAN_SHIFT
    log_scale = log_scale_raw_fp - int(LOG_SCALE_OFFSET * one)
    sub_steps = one // LOG_SCALE_STEPS_PER_UNIT
    j = (log_scale - int(LOG_SCALE_MIN * one)) // sub_steps
    return m, f, np.minimum(np.maximum(j, 0), NUM_LOG_SCALES - 1)


def window_starts(m: np.ndarray, f: np.ndarray, j: np.ndarray, low: int,
                  alphabet_size: int) -> np.ndarray:
    """Flat index in the table of the probability of symbol `low` for each (m, f, j);
    the window of a symbol's pmf is [start, start + alphabet_size)."""
    width = 2 * alphabet_size + 1
    return ((f * NUM_LOG_SCALES + j) * width) + (low - m + alphabet_size)

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
LOG_SCALE_STEP_BITS = 4  # 2**4 steps per unit
LOG_SCALE_OFFSET = 4.0  # log_scale = raw ARM output - 4: small scales at initialisation
assert 1 << LOG_SCALE_STEP_BITS == LOG_SCALE_STEPS_PER_UNIT
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
    # the CDF once at each of the 2A + 2 bin edges k - A - 1/2 - frac, which
    # bins k - 1 and k share (every edge is a multiple of 1/64: exact)
    edges = np.arange(-a, a + 2, dtype=np.float64) - 0.5
    cdf = _laplace_cdf(edges[None, None, :] - frac[:, None, None], scale[None, :, None])
    probability = cdf[:, :, 1:] - cdf[:, :, :-1]
    table = np.maximum(probability, PROBABILITY_FLOOR)
    table.setflags(write=False)
    return table


def window_starts(mean_fp: np.ndarray, log_scale_raw_fp: np.ndarray, low: int, high: int
                  ) -> np.ndarray:
    """Flat index in the table of the probability of symbol `low` for each pair
    of integer ARM outputs (8 fractional bits, int64 arrays); the window of a
    symbol's pmf is [start, start + alphabet_size).

    The row is (f, j): the mean's fraction in 1/32 and the log-scale's step;
    the window's place in it follows the mean's integer part m, clamped to
    [low - 1, high + 1] so that every window stays inside its row."""
    # np.minimum/np.maximum, not np.clip, and in place: this runs once per
    # wave on short arrays, where each call's fixed cost dominates
    one = 1 << FRACTION_BITS
    alphabet_size = high - low + 1
    width = 2 * alphabet_size + 1
    m = mean_fp >> FRACTION_BITS
    np.maximum(m, low - 1, out=m)
    np.minimum(m, high + 1, out=m)
    f = mean_fp & (one - 1)
    f >>= MEAN_SHIFT
    # j = floor((raw - LOG_SCALE_OFFSET - LOG_SCALE_MIN) * LOG_SCALE_STEPS_PER_UNIT)
    j = log_scale_raw_fp - int((LOG_SCALE_OFFSET + LOG_SCALE_MIN) * one)
    j >>= FRACTION_BITS - LOG_SCALE_STEP_BITS
    np.maximum(j, 0, out=j)
    np.minimum(j, NUM_LOG_SCALES - 1, out=j)
    f *= NUM_LOG_SCALES
    f += j
    f *= width
    f -= m
    f += low + alphabet_size
    return f


def windows(table: np.ndarray) -> np.ndarray:
    """A (rows, alphabet_size) view of the flat table: row s is the window
    starting at s, so windows(table)[starts] gathers whole pmfs at once."""
    from numpy.lib.stride_tricks import sliding_window_view

    alphabet_size = (table.shape[-1] - 1) // 2
    return sliding_window_view(table.reshape(-1), alphabet_size)

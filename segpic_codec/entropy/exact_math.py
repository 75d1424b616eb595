"""Elementwise functions whose float64 results are the same bits on every machine.

libm's exp, log, erf and tanh (and numpy's and torch's vectorised versions of
them) are accurate to about an ulp, but which ulp depends on the CPU, the SIMD
width and the library build. A value that decides a symbol or a probability
table must not depend on that, so the functions here are built from the IEEE
operations that are correctly rounded everywhere (+, -, *, /, sqrt, rint, frexp,
ldexp), applied in a fixed order: range reduction and a polynomial, or a series.
numpy's add and multiply are separate, correctly rounded operations (no fused
multiply-add across ufunc calls), so the same inputs give the same bits on
Intel, AMD and ARM. They are accurate to a few ulps, which is all that the
entropy models need; what matters is that they are reproducible.

Nothing here is on a hot path: the functions fill tables once per network.
"""

from __future__ import annotations

import math

import numpy as np

# ln 2 split so that k * LN2_HI is exact for |k| < 2^11 (Cody and Waite)
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
SQRT_HALF = 0.70710678118654752440
TWO_OVER_SQRT_PI = 1.12837916709551257390

_EXP_COEFFS = [1.0 / math.factorial(n) for n in range(18)]  # Taylor of exp on |r| < 0.35
_LOG_TERMS = 14  # atanh series of log on [sqrt(1/2), sqrt(2)): |u| < 0.172
_ERF_TERMS = 260  # enough for |x| <= ERF_SATURATION (the terms peak near n = 2 x^2)
ERF_SATURATION = 6.0  # erf(6) = 1 - 2e-17: 1.0 in float64


def _f64(x: np.ndarray | float) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def exp(x: np.ndarray | float) -> np.ndarray:
    """e^x: x = k ln2 + r with |r| <= ln2 / 2, e^r by Taylor (18 terms), then
    times 2^k (exact). Below -745 the result is 0, above 709 it is inf."""
    x = np.clip(_f64(x), -746.0, 710.0)
    k = np.rint(x * INV_LN2)
    r = (x - k * LN2_HI) - k * LN2_LO
    p = np.full_like(r, _EXP_COEFFS[-1])
    for c in reversed(_EXP_COEFFS[:-1]):
        p *= r  # in place: the same product and sum as p * r + c, no new arrays
        p += c
    return np.ldexp(p, k.astype(np.int64))


def log(x: np.ndarray | float) -> np.ndarray:
    """ln x for x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(u),
    u = (m - 1) / (m + 1), by its series."""
    x = _f64(x)
    m, e = np.frexp(x)
    low = m < SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = (e - low).astype(np.float64)
    u = (m - 1.0) / (m + 1.0)
    s = u * u
    p = np.full_like(s, 1.0 / (2 * _LOG_TERMS + 1))
    for n in range(_LOG_TERMS - 1, -1, -1):
        p = p * s + 1.0 / (2 * n + 1)
    return (e * LN2_HI + (e * LN2_LO + 2.0 * u * p))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """1 / (1 + e^-x), evaluated on the side where e^-|x| <= 1."""
    x = _f64(x)
    e = exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_pair(x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(sigmoid(x), sigmoid(-x)), the same bits, from one e^-|x|."""
    x = _f64(x)
    e = exp(-np.abs(x))
    upper, lower = 1.0 / (1.0 + e), e / (1.0 + e)
    return np.where(x >= 0, upper, lower), np.where(-x >= 0, upper, lower)


def tanh(x: np.ndarray | float) -> np.ndarray:
    """(1 - e^-2|x|) / (1 + e^-2|x|) with the sign of x."""
    x = _f64(x)
    e = exp(-2.0 * np.abs(x))
    return np.copysign((1.0 - e) / (1.0 + e), x)


def softplus(x: np.ndarray | float) -> np.ndarray:
    """ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)."""
    x = _f64(x)
    return np.maximum(x, 0.0) + log(1.0 + exp(-np.abs(x)))


def erf(x: np.ndarray | float) -> np.ndarray:
    """erf x = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): every term
    has the sign of x, so the sum has no cancellation. |x| >= 6 gives +-1."""
    x = np.clip(_f64(x), -ERF_SATURATION, ERF_SATURATION)
    two_x2 = 2.0 * x * x
    term = x.copy()
    total = x.copy()
    for n in range(1, _ERF_TERMS):
        term = term * two_x2 / (2 * n + 1)
        total = total + term
    return TWO_OVER_SQRT_PI * exp(-x * x) * total


def gelu(x: np.ndarray | float) -> np.ndarray:
    """x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, torch's exact (erf) GELU."""
    x = _f64(x)
    return x * (0.5 * (1.0 + erf(x * SQRT_HALF)))

"""The integer weights of a fixed-point convolution (`fixed_point.FixedConv`), in
numpy: the largest weight shift s <= MAX_WEIGHT_SHIFT whose sums float64 holds
exactly, chosen by the exact test

    max over output channels of  sum_j |round(w_j 2^s)| ACT_LIMIT + |round(b 2^(16+s))|  < 2^53

(and every integer weight and bias below 2^53). The test is not monotone in s
(rounding can make sum_j |round(w_j 2^(s+1))| a little less than twice the sum
at s), so the answer is the largest passing s, searched from above.

Testing each shift in int64 took several passes over the weights, most of the
time of loading a network (the exact entropy path derives 7.4 M weights). Here a
shift is decided from the float sums of |w| wherever they are clear of the
limit: sum_j |round(w_j 2^s)| lies within n/2 of 2^s sum_j |w_j| (n taps), and
the float sum is within a relative 1e-9 of the exact one, so a bound that clears
2^53 by that margin decides the test as int64 sums would. Only a shift that
close to the limit is tested in int64. The result is the same shift and the
same integers as testing every shift exactly.

w 2^s is exact (a power-of-two scaling), and so is rounding it to an integer.
The weights are kept as round(w 2^s) 2^-s, made in two passes (see
`fixed_weights`) into buffers from an `Arena`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...entropy.activation_tables import FRAC_BITS

ACT_LIMIT = (1 << 30) - 1  # |activation| < 2^14
EXACT_SUM_LIMIT = 1 << 53  # float64 holds every integer below it
MAX_WEIGHT_SHIFT = 40
# relative error allowed for the float sums of |w| (numpy's sums of a few
# thousand terms are within 1e-13): generous, as it only sends shifts near the
# limit to the int64 test
_FLOAT_SUM_MARGIN = 1e-9


@dataclass
class FixedWeights:
    """A layer's weights rounded to multiples of 2^-shift, round(w 2^s) 2^-s (the
    test's integers times 2^-s, float64), and its bias as integers at the sums'
    scale 2^-(16 + shift). `half_fits`: the bias plus 2^(shift-1) (the 1/2 that
    rounds the sums to nearest) still passes the test, so that the convolution can
    add it itself, exactly."""

    shift: int
    weight: np.ndarray
    bias: np.ndarray
    half_fits: bool


class Arena:
    """float64 arrays carved from a few large buffers. numpy has the kernel back a
    large buffer with huge pages, where each layer's own array was faulted in 4 KB
    at a time: for the exact path's 7.4 M weights that was most of the time of
    making them. Pages a buffer never uses are never touched (no memory)."""

    CHUNK = 2 << 20  # float64 values: 16 MB buffers

    def __init__(self) -> None:
        self._free = np.empty(0)

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if self._free.size < n:
            self._free = np.empty(max(n, self.CHUNK))
        out, self._free = self._free[:n], self._free[n:]
        return out.reshape(shape)


class Scratch:
    """An `Arena` whose arrays all share one buffer: each is valid until the next."""

    def __init__(self) -> None:
        self._buffer = np.empty(0)

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if self._buffer.size < n:
            self._buffer = np.empty(n)
        return self._buffer[:n].reshape(shape)


def fixed_weights(weight: np.ndarray, bias: np.ndarray, sum_axes: tuple[int, ...],
                  out: np.ndarray | None = None) -> FixedWeights:
    """The weights of the largest shift s <= MAX_WEIGHT_SHIFT that passes the test
    of the module docstring, into `out` (float64, weight's shape) if given.
    `sum_axes`: the axes of `weight` summed into one output channel. Raises
    ValueError if no shift passes."""
    w = np.asarray(weight)
    if w.dtype != np.float64:
        w = w.astype(np.float32, copy=False)  # exact for float16 too
    b = np.asarray(bias, dtype=np.float64)
    out = np.empty(w.shape) if out is None else out
    taps = int(np.prod([w.shape[a] for a in sum_axes]))
    magnitudes = np.abs(w)
    l1 = magnitudes.sum(axis=sum_axes, dtype=np.float64).reshape(-1)  # per output channel
    smallest = float(magnitudes.min()) if w.size else 1.0
    del magnitudes
    start = MAX_WEIGHT_SHIFT
    if float(l1.max(initial=0.0)) > 0:
        # one above the float estimate: the test never passes higher (there
        # l1 2^s ACT_LIMIT > 2^54, more than rounding, n/2 ACT_LIMIT, can take off)
        estimate = np.floor(np.log2(EXACT_SUM_LIMIT / ACT_LIMIT / float(l1.max())))
        start = min(start, int(estimate) + 1)
    for shift in range(max(start, 0), -1, -1):
        b_int = np.rint(b * 2.0**(FRAC_BITS + shift))
        verdict = _bound_verdict(l1, b_int, taps, shift)
        if verdict is False:
            continue
        if verdict is True:
            # round(w 2^s) 2^-s as (w + c) - c, c = 1.5 2^(52-s): float64's step
            # between c/1.5 and 2 c/1.5 is 2^-s, so the sum rounds w to a multiple of
            # 2^-s, half to even as rint does, and the difference is exact (it needs
            # |w| < 2^(51-s); a pass gives |w| < 2^(23-s)). A weight that rounds to 0
            # gets +0 there and rint's 0 with the sign of w: given that sign
            c = 1.5 * 2.0**(52 - shift)
            np.add(w, c, out=out, dtype=np.float64)
            out -= c
            if smallest <= 2.0**-(shift + 1):
                np.copysign(out, w, out=out, where=out == 0)
        else:
            w_int = np.rint(w.astype(np.float64) * 2.0**shift)
            if verdict is None and not passes(w_int, b_int, sum_axes):
                continue
            np.multiply(w_int, 2.0**-shift, out=out)
        half = b_int + 2.0**(shift - 1) if shift else b_int
        half_verdict = _bound_verdict(l1, half, taps, shift)
        half_fits = shift > 0 and (half_verdict is True or (
            half_verdict is None and passes(out * 2.0**shift, half, sum_axes)))
        return FixedWeights(shift, out, b_int, half_fits)
    raise ValueError("weights too large for exact fixed-point sums")


def _bound_verdict(l1: np.ndarray, b_int: np.ndarray, taps: int, shift: int) -> bool | None:
    """The test at `shift` with integer bias `b_int`, decided from the float sums
    `l1` of |w|: True (passes), False (fails), or None (too near the limit to tell).
    A pass also bounds every integer weight: |round(w 2^s)| <= l1 2^s + 1/2 < 2^23."""
    limit = float(EXACT_SUM_LIMIT)
    b_abs = np.abs(b_int)
    if float(b_abs.max()) >= limit:
        return False
    sums = l1 * (2.0**shift * ACT_LIMIT)
    rounding = (taps / 2 + 1) * ACT_LIMIT
    if float((sums * (1 - _FLOAT_SUM_MARGIN) + b_abs).max()) - rounding \
            >= limit * (1 + _FLOAT_SUM_MARGIN):
        return False
    if float((sums * (1 + _FLOAT_SUM_MARGIN) + b_abs).max()) + rounding \
            < limit * (1 - _FLOAT_SUM_MARGIN):
        return True
    return None


def passes(w_int: np.ndarray, b_int: np.ndarray, sum_axes: tuple[int, ...]) -> bool:
    """The test itself, in int64: exact, the same on every machine."""
    if np.abs(w_int).max() >= EXACT_SUM_LIMIT or np.abs(b_int).max() >= EXACT_SUM_LIMIT:
        return False
    l1 = np.abs(w_int.astype(np.int64)).sum(axis=sum_axes).reshape(-1)
    # l1 * ACT_LIMIT could overflow int64 for a huge l1: compare in float first
    # (far from that edge), then exactly
    if float(l1.max()) * ACT_LIMIT >= 2.0**62:
        return False
    worst = l1 * ACT_LIMIT + np.abs(b_int.astype(np.int64))
    return int(worst.max()) < EXACT_SUM_LIMIT

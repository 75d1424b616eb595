"""The synthesis' layers in numpy, in two arithmetics: `IntegerArithmetic`, exact
fixed point (the same bits on every machine), and `FloatArithmetic`, float32
as the PyTorch networks that files without the integer-synthesis flag were
checked against.

Fixed point, as the integer ARM (`bitstream/arm_integer`) and SegPIC's exact
entropy networks (`segpic/networks/fixed_point`): activations are integers at
scale 2^-16, clamped to |a| <= ACT_LIMIT and held in float64 arrays. A layer's
integer weights w (step 2^-e, e <= MAX_WEIGHT_EXPONENT) and its bias b, brought
to the product's scale 2^-(16 + e), give integer partial sums bounded by
sum_j |w_j| ACT_LIMIT + |b|; `_check_exact` refuses a layer whose bound reaches
2^53, so every float64 product and sum (any BLAS kernel, summation order or
thread count) is exact. The sum is rounded back to 2^-16 with
floor(acc 2^-e + 1/2), exact too (a power-of-two scaling, then a sum that still
fits 53 bits). GELU is the shared integer table (`activation_tables`),
evaluated at every activation in its range once per process (a gather).
Every file this encoder writes passes the checks (weights below 2^15 at steps
2^-2 .. 2^-14, biases at steps down to 2^-20).
"""

from __future__ import annotations

import numpy as np

from ...entropy import exact_math
from ...entropy.activation_tables import FRAC_BITS, dense_table
from ..errors import MoricFormatError

ONE = 1 << FRAC_BITS
ACT_LIMIT = float((1 << 30) - 1)  # |activation| < 2^14
# below 2^53 by a margin for the offsets a layer's bias takes (`IntegerArithmetic.layer`)
EXACT_SUM_LIMIT = float((1 << 53) - (1 << 40))
BIAS_LIMIT = float(1 << 51)
MAX_WEIGHT_EXPONENT = 16  # finer weight steps are rounded to 2^-16 first
# beyond it the integer GELU is 0 (below) or the identity (above); it is so from
# |x| = 4.65 on (checked by a test), and a smaller table builds and gathers faster
GELU_RANGE = (-5.0, 5.0)


def _round_shift(values: np.ndarray, shift: int) -> np.ndarray:
    """floor(values 2^-shift + 1/2) of int64 values (a left shift when shift < 0)."""
    if shift <= 0:
        return values << -shift
    return (values + (1 << (shift - 1))) >> shift


class Layer:
    """weight (out, in) and bias (out,) ready for `arithmetic.linear`; `exponent`
    is the integer arithmetic's rescaling shift (0 in float)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, exponent: int):
        self.weight = np.ascontiguousarray(weight)
        self.bias = np.ascontiguousarray(bias)[:, None]
        self.exponent = exponent


def _gelu_float32(x: np.ndarray) -> np.ndarray:
    """x Phi(x) with erf from Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7,
    float32's own resolution near 1)."""
    s = np.abs(x) * np.float32(0.7071067811865476)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.3275911) * s)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (
        np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    erf = np.float32(1.0) - poly * np.exp(-s * s)
    return np.float32(0.5) * x * (np.float32(1.0) + np.copysign(erf, x))


class FloatArithmetic:
    """float32 values; layers hold the parameters' values as PyTorch held them."""

    dtype = np.float32
    integer = False

    def __init__(self, activation: str):
        self.activation = activation

    def layer(self, weight: tuple[np.ndarray, int], bias: tuple[np.ndarray, int] | None,
              identity: bool = False, activated: bool = True) -> Layer:
        w = self.values(weight)
        if identity:
            w = w + _identity(w.shape).astype(np.float32)
        w = w.reshape(w.shape[0], -1)
        b = self.values(bias) if bias is not None else np.zeros(w.shape[0], np.float32)
        return Layer(w, b, 0)

    @staticmethod
    def values(parameter: tuple[np.ndarray, int]) -> np.ndarray:
        values, exponent = parameter
        return (np.asarray(values, np.float64) * 2.0**-exponent).astype(np.float32)

    def finish(self, acc: np.ndarray, layer: Layer, activate: bool) -> np.ndarray:
        if not activate:
            return acc
        if self.activation == "gelu":
            return _gelu_float32(acc)
        return np.maximum(acc, 0.0, out=acc)

    def coordinates(self, n: int) -> np.ndarray:
        """PyTorch's float32 linspace(-1, 1, n): from each end towards the middle."""
        if n == 1:
            return np.zeros(1, np.float32)
        step = np.float32(2.0) / np.float32(n - 1)
        i = np.arange(n)
        head = np.float32(-1.0) + step * i.astype(np.float32)
        tail = np.float32(1.0) - step * (n - 1 - i).astype(np.float32)
        return np.where(i < n // 2, head, tail).astype(np.float32)

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """(3, n) values -> (3, n) uint8: clamped to [0, 1], x 255, half to even."""
        image = np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
        return np.rint(np.clip(image, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


class IntegerArithmetic:
    """Activations: integers at 2^-16 in float64 (see the module docstring)."""

    dtype = np.float64
    integer = True

    def __init__(self, activation: str):
        self.activation = activation
        if activation == "gelu":
            self.gelu, self.gelu_low = dense_table(exact_math.gelu, *GELU_RANGE)

    def layer(self, weight: tuple[np.ndarray, int], bias: tuple[np.ndarray, int] | None,
              identity: bool = False, activated: bool = True) -> Layer:
        """A layer of integer parameters (checked: `_check_exact`). Its bias also
        holds what `finish` adds before rounding down: 1/2 (rounding to nearest)
        and, before GELU (`activated`), minus the table's first activation (so
        that the rounded sum is the table index)."""
        values, exponent = weight
        w = np.asarray(values, np.int64)
        if exponent > MAX_WEIGHT_EXPONENT:
            w = _round_shift(w, exponent - MAX_WEIGHT_EXPONENT)
            exponent = MAX_WEIGHT_EXPONENT
        if identity:
            w = w + _identity(w.shape).astype(np.int64) * (1 << exponent)
        w = w.reshape(w.shape[0], -1)
        if bias is None:
            b = np.zeros(w.shape[0], np.int64)
        else:
            b_values, b_exponent = bias
            b = _round_shift(np.asarray(b_values, np.int64), b_exponent - FRAC_BITS - exponent)
            b = np.clip(b, -BIAS_LIMIT, BIAS_LIMIT).astype(np.int64)
        _check_exact(w, b)
        offset = (1 << exponent) // 2
        if activated and self.activation == "gelu":
            offset -= int(self.gelu_low) << exponent
        return Layer(w.astype(np.float64), (b + offset).astype(np.float64), exponent)

    def values(self, parameter: tuple[np.ndarray, int]) -> np.ndarray:
        raise TypeError("the integer synthesis has no float values")

    def finish(self, acc: np.ndarray, layer: Layer, activate: bool) -> np.ndarray:
        """The exact sums (their layer's bias included) -> activations, in place
        where it can: rounded, clamped, activated."""
        if layer.exponent:
            acc *= 2.0**-layer.exponent
            np.floor(acc, out=acc)
        if not activate:
            return np.clip(acc, -ACT_LIMIT, ACT_LIMIT, out=acc)
        if self.activation != "gelu":
            return np.clip(acc, 0.0, ACT_LIMIT, out=acc)
        # acc is the activation minus the table's first one: its index
        out = self.gelu.take(acc.astype(np.intp), mode="clip")
        span = float(self.gelu.size - 1)
        if acc.size and acc.max() > span:  # above the table GELU is the identity
            out = np.where(acc > span, np.minimum(acc + self.gelu_low, ACT_LIMIT), out)
        return out

    def coordinates(self, n: int) -> np.ndarray:
        """-1 .. 1 in n steps at 2^-16, rounded half up, in integers."""
        if n == 1:
            return np.zeros(1)
        i = np.arange(n, dtype=np.int64)
        numerator = (2 * i - (n - 1)) * ONE
        return ((2 * numerator + (n - 1)) // (2 * (n - 1))).astype(np.float64)

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """(3, n) activations -> (3, n) uint8: round(v 255), clamped to 0..255."""
        levels = np.floor((image * 255.0 + ONE / 2) * (1.0 / ONE))  # exact: < 2^53
        return np.clip(levels, 0, 255).astype(np.uint8)


def _identity(shape: tuple[int, ...]) -> np.ndarray:
    """I of a square 1x1 (out, in) or 3x3 (out, in, 3, 3) weight."""
    eye = np.zeros(shape, np.int64)
    n = shape[0]
    if len(shape) == 2:
        eye[range(n), range(n)] = 1
    else:
        eye[range(n), range(n), 1, 1] = 1
    return eye


def _check_exact(weight: np.ndarray, bias: np.ndarray) -> None:
    """Every output's partial sums stay below 2^53 (int64 arithmetic: exact)."""
    l1 = np.abs(weight).sum(axis=1)
    if l1.size and (float(l1.max()) * ACT_LIMIT >= 2.0**62
                    or int((l1 * int(ACT_LIMIT) + np.abs(bias)).max()) >= EXACT_SUM_LIMIT):
        raise MoricFormatError("corrupt MoRIC file (network parameters too large for "
                               "the integer synthesis)")

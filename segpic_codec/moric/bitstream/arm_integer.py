"""The ARM in exact fixed point, for coding (torch-free; `arm` has the float
ARM that training uses, with the same parameters).

Weights with 16 fractional bits, biases with 32, activations with 16, outputs
(mean, log-scale) with 8. The products are computed by float64 matrix
multiplication on integer-valued operands, which is exact (and thus identical
on every machine, for any summation order or thread count) because every
operand and partial sum stays below 2**53: |contexts| <= 2**8, |weights| < 8
(checked), hidden activations clamped to 2**12.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import MoricFormatError

CONTEXT_SIZE = 16
ARM_WIDTH = 16
WEIGHT_FRACTION_BITS = 16
BIAS_FRACTION_BITS = 32
OUTPUT_FRACTION_BITS = 8
MAX_ABS_PARAMETER = 8.0  # keeps the integer products exact in float64
HIDDEN_CLAMP = float(1 << (WEIGHT_FRACTION_BITS + 12))


class IntegerArm:
    """The ARM in exact fixed point, built from the quantised parameters.

    `parameters` maps each Arm parameter name to (integer values, exponent): the
    real value is integer * 2**-exponent."""

    def __init__(self, parameters: dict[str, tuple[np.ndarray, int]]):
        def fixed(name: str, fraction_bits: int) -> np.ndarray:
            values, exponent = parameters[name]
            values = np.asarray(values, dtype=np.int64)
            if not 0 <= exponent <= fraction_bits:
                raise MoricFormatError(f"ARM parameter {name}: step 2^-{exponent} unsupported")
            if values.size and np.abs(values).max() >= MAX_ABS_PARAMETER * 2**exponent:
                raise MoricFormatError(f"ARM parameter {name} out of range")
            return (values << (fraction_bits - exponent)).astype(np.float64)

        one = float(1 << WEIGHT_FRACTION_BITS)
        eye = np.eye(ARM_WIDTH) * one
        # row-vector convention: activations (n, 16) @ weights.T. The contexts'
        # own scale 2^16 is folded into the weights that take them (exact: the
        # same integer products), and the output layer is transposed so that
        # the mean and the log-scale come out as contiguous rows.
        self.w1 = (fixed("w1", WEIGHT_FRACTION_BITS).reshape(ARM_WIDTH, -1) + eye).T * one
        self.w2 = (fixed("w2", WEIGHT_FRACTION_BITS).reshape(ARM_WIDTH, -1) + eye).T.copy()
        self.w_out = fixed("w_out", WEIGHT_FRACTION_BITS).reshape(2, -1).copy()
        self.w_linear = fixed("w_linear", WEIGHT_FRACTION_BITS).reshape(2, -1) * one
        self.b1 = fixed("b1", BIAS_FRACTION_BITS)
        self.b2 = fixed("b2", BIAS_FRACTION_BITS)
        self.b_out = fixed("b_out", BIAS_FRACTION_BITS)[:, None].copy()

    def __call__(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 16) integer contexts (any numeric dtype holding integers) ->
        (mean, raw log-scale) with 8 fractional bits, int64.

        In place where it can (this runs once per wave of the decoder, on a few
        hundred rows, where each numpy call's fixed cost counts); np.maximum and
        np.minimum, not np.clip, for the same reason."""
        x = np.asarray(contexts, dtype=np.float64)
        g = _hidden(_hidden(x, self.w1, self.b1), self.w2, self.b2)
        out = self.w_out @ g.T
        out += self.w_linear @ x.T
        out += self.b_out
        out *= 1.0 / float(1 << (BIAS_FRACTION_BITS - OUTPUT_FRACTION_BITS))
        np.floor(out, out=out)
        out = out.astype(np.int64)
        return out[0], out[1]


def _hidden(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """One hidden layer: floor((x @ weight + bias) 2^-16), ReLU, clamped."""
    h = x @ weight
    h += bias
    h *= 1.0 / float(1 << WEIGHT_FRACTION_BITS)
    np.floor(h, out=h)
    np.maximum(h, 0.0, out=h)
    return np.minimum(h, HIDDEN_CLAMP, out=h)


assert math.log2(HIDDEN_CLAMP) + math.log2(MAX_ABS_PARAMETER) + WEIGHT_FRACTION_BITS + 4 < 53

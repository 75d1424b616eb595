"""Fixed-point layers: the entropy-parameter networks computed exactly, so that
every machine (any CPU, any BLAS kernel, any thread count or band plan) derives
the same means and scales from the same file.

Activations are integers a at scale 2^-FRAC_BITS (a value v = a / 2^16),
clamped to |a| <= ACT_LIMIT, held in float64 tensors: float64 holds every
integer below 2^53 exactly, and BLAS convolutions take float64. A convolution

    acc = sum_j w_j a_j + b,   w_j = round(weight_j 2^s),  b = round(bias 2^(16+s))

has integer partial sums whose magnitude is at most sum_j |w_j| ACT_LIMIT + |b|.
`FixedConv` picks the largest shift s (at most MAX_WEIGHT_SHIFT) for which that
bound, taken over the output channel with the largest sum of |w_j|, stays
below 2^53 (`fixed_weights`); float64 then holds every partial sum exactly, in
whatever order, blocking or band plan the convolution sums them. The result is
rounded to floor(acc 2^-s + 1/2). The layer holds its weights and bias times
2^-s, with the 1/2 in the bias (b + 2^(s-1) where that still meets the bound):
every product and partial sum is then the exact one times 2^-s (a multiple of
2^-s below 2^(53-s): 53 significant bits at most), so the convolution itself
yields acc 2^-s + 1/2 exactly, and a floor finishes it. The bound is checked
when the layer is built (a weight that cannot meet it raises) and by
tests/test_fixed_point.py at the layer widths of every configuration.

Products of two activations are exact where both factors are bounded so that
the product stays below 2^53 (`multiply`; the RAT's per-pixel kernels and the
features they filter are clamped to DPS_LIMIT for it). Nonlinearities are
integer tables (`exact_math`, the same bits everywhere) with linear
interpolation in the same exact arithmetic. No step reads a libm function.

Everything but the convolutions runs in numpy, in place on the tensors' memory:
single-threaded, where each of torch's elementwise operations on these maps is
a parallel region (on a busy machine, a wait for the second thread each time).
Every operation is exact, so torch and numpy give the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...entropy import activation_tables, exact_math
from ...entropy.activation_tables import FRAC_BITS, SUBSTEP
from .conv_bands import bandable, same_conv2d_in_bands
from .fixed_weights import (
    ACT_LIMIT,
    EXACT_SUM_LIMIT,
    MAX_WEIGHT_SHIFT,
    Arena,
    Scratch,
    fixed_weights,
)

__all__ = ["ACT_LIMIT", "DPS_LIMIT", "EXACT_SUM_LIMIT", "FRAC_BITS", "MAX_WEIGHT_SHIFT", "ONE",
           "Arena", "FixedConv", "Rounding", "Scratch", "TableActivation", "array", "clamp_",
           "concat", "fixed_layer", "gelu_table", "multiply", "scaled_product",
           "sigmoid_table", "tanh_table", "to_fixed", "to_float"]

ONE = 1 << FRAC_BITS
DPS_LIMIT = (1 << 26) - 1  # the RAT's kernels and features: their products < 2^52


def array(t: torch.Tensor) -> np.ndarray:
    """The numpy view of a CPU tensor of activations (the same memory)."""
    return t.detach().numpy()


def clamp_(a: np.ndarray, limit: float = ACT_LIMIT) -> np.ndarray:
    return np.clip(a, -limit, limit, out=a)


def concat(maps: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat along channels, in numpy (single-threaded, see above)."""
    return torch.from_numpy(np.concatenate([array(m) for m in maps], axis=1))


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """float64 values -> activations (round half to even, then clamp)."""
    a = np.rint(array(x).astype(np.float64) * ONE)
    return torch.from_numpy(clamp_(a))


def to_float(a: torch.Tensor) -> torch.Tensor:
    """activations -> float64 values (exact: a power-of-two scale)."""
    return torch.from_numpy(array(a) * 2.0**-FRAC_BITS)


def multiply(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The activation a * b = floor(a b 2^-16 + 1/2), for factors whose product
    stays below 2^53, as `scaled_product(a 2^-16, b)`."""
    return scaled_product(np.multiply(a, 2.0**-FRAC_BITS, out=out), b, out=out)


def scaled_product(a_scaled: np.ndarray, b: np.ndarray, out: np.ndarray | None = None
                   ) -> np.ndarray:
    """floor(a_scaled b + 1/2) for a_scaled = a 2^-16 (exact: a power-of-two scale):
    the product is the exact a b 2^-16 (a multiple of 2^-16 below 2^37, as a b <
    2^53), and so is the 1/2 added to it."""
    out = np.multiply(a_scaled, b, out=out)
    out += 0.5
    return np.floor(out, out=out)


@dataclass(frozen=True)
class Rounding:
    """How a layer's exact sums become activations: floor(acc 2^-s + 1/2), clamped
    to +-limit. `__call__` takes acc 2^-s as the layer's scaled weights give it
    (plus the 1/2 where `half_in_bias`) and rounds it in place."""

    shift: int
    half_in_bias: bool
    limit: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.shift:
            if not self.half_in_bias:
                x += 0.5
            np.floor(x, out=x)
        return clamp_(x, self.limit)


class FixedConv(nn.Module):
    """An nn.Conv2d or nn.ConvTranspose2d on activations, exactly (see the module
    docstring for the bound)."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, limit: int = ACT_LIMIT,
                 arena: Arena | Scratch | None = None):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        if self.transposed and conv.groups != 1:
            raise ValueError("grouped transposed convolutions are not supported")
        if conv.padding_mode != "zeros":
            raise ValueError("only zero padding is supported")
        weight = conv.weight.detach().cpu().numpy()
        out_channels = weight.shape[1 if self.transposed else 0]
        bias = (conv.bias.detach().cpu().numpy() if conv.bias is not None
                else np.zeros(out_channels))
        # the taps that reach one output channel: (in / groups, kh, kw) of a
        # convolution's weight row; all of a transposed convolution's (in, kh, kw)
        fixed = fixed_weights(weight, bias, (0, 2, 3) if self.transposed else (1, 2, 3),
                              None if arena is None else arena.empty(weight.shape))
        # the 1/2 of rounding to nearest: in the bias, or added after the sums; the
        # outputs' limit: ACT_LIMIT, or DPS_LIMIT in the RAT
        self.rounding = Rounding(fixed.shift, fixed.half_fits, limit)
        w = torch.from_numpy(fixed.weight)  # round(weight 2^s) 2^-s
        b_int = fixed.bias + 2.0**(fixed.shift - 1) if fixed.half_fits else fixed.bias
        b = torch.from_numpy(b_int * 2.0**-fixed.shift)
        self.register_buffer("weight", w)
        self.register_buffer("bias", b)
        self.stride, self.padding, self.groups = conv.stride, conv.padding, conv.groups
        self.dilation = conv.dilation
        self.output_padding = getattr(conv, "output_padding", (0, 0))
        # a 'same' convolution runs in row bands (conv_bands), which sum the same
        # products: exactly the same sums
        self.in_bands = bandable(conv)

    @property
    def shift(self) -> int:
        return self.rounding.shift

    @property
    def half_in_bias(self) -> bool:
        return self.rounding.half_in_bias

    def integer_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, b): the weights and the bias as the integers of the module docstring
        (the bias without the 1/2 of rounding), float64."""
        w = self.weight * 2.0**self.shift
        b = self.bias * 2.0**self.shift
        if self.half_in_bias:
            b = b - 2.0**(self.shift - 1)
        return w, b

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        # a holds activations (|a| <= ACT_LIMIT): every layer here clamps what it
        # produces, and so does each place that makes activations otherwise
        if self.transposed:
            acc = F.conv_transpose2d(a, self.weight, self.bias, self.stride, self.padding,
                                     self.output_padding, self.groups)
        elif self.in_bands:
            acc = same_conv2d_in_bands(a, self.weight, self.bias, self.groups)
        else:
            acc = F.conv2d(a, self.weight, self.bias, self.stride, self.padding,
                           self.dilation, self.groups)
        self.rounding(array(acc))  # acc 2^-s (+ 1/2 if in the bias), exactly
        return acc


class TableActivation(nn.Module):
    """f on activations: integer table, linear interpolation between its entries;
    inputs beyond the table take its end values (or x itself with `identity_above`,
    GELU's asymptote; 0 with `zero_below`).

    A function that is 0 below its table and x above it (GELU) is applied as one
    gather from `activation_tables.dense_core`: the interpolation at every
    activation where it is neither 0 nor x (built at the first call, once per
    process). Others (sigmoid, tanh, on few values here) interpolate as they go."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float,
                 identity_above: bool = False, zero_below: bool = False):
        super().__init__()
        self.fn, self.range = fn, (lo, hi)
        entries, k0 = activation_tables.table(fn, lo, hi)  # made once per process
        self.lo, self.hi = k0 << SUBSTEP, (k0 + entries.size - 1) << SUBSTEP
        self.identity_above, self.zero_below = identity_above, zero_below
        # the gather needs f = 0 below and x above (checked by dense_core)
        self.dense = identity_above and zero_below

    @property
    def table(self) -> torch.Tensor:
        """The table's entries (a copy, for tests and docs)."""
        return torch.from_numpy(activation_tables.table(self.fn, *self.range)[0].copy())

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        x = array(a)
        return torch.from_numpy(self._gather(x) if self.dense else self._interpolate(x))

    def _gather(self, x: np.ndarray) -> np.ndarray:
        core, low = activation_tables.dense_core(self.fn, *self.range)
        index = np.subtract(x, low, out=np.empty(x.shape, np.intp), casting="unsafe")
        last = core.size - 1
        # a plain gather where every index is in the core (take's clip mode costs more
        # than these two passes)
        above = index.max(initial=0) > last
        if above or index.min(initial=0) < 0:
            np.clip(index, 0, last, out=index)  # below the core: its first entry, 0
        out = core.take(index)
        if above:  # above the core f is the identity
            np.copyto(out, x, where=x > low + last)
        return out

    def _interpolate(self, x: np.ndarray) -> np.ndarray:
        # entry i times 2^SUBSTEP, and the step to entry i + 1 (0 after the last):
        # f(x) = (start[i] + step[i] * frac + half) >> SUBSTEP
        start, step = activation_tables.steps(self.fn, *self.range)
        clipped = np.clip(x, self.lo, self.hi)
        offset = np.subtract(clipped, self.lo, out=np.empty(x.shape, np.int64),
                             casting="unsafe")
        index = offset >> SUBSTEP
        offset &= (1 << SUBSTEP) - 1  # the fraction
        offset *= step.take(index)
        offset += start.take(index) + (1 << (SUBSTEP - 1))
        offset >>= SUBSTEP
        out = offset.astype(np.float64)
        if self.identity_above:
            np.copyto(out, x, where=x > self.hi)
        if self.zero_below:
            out[x < self.lo] = 0.0
        return out


def gelu_table() -> TableActivation:
    return TableActivation(exact_math.gelu, -8.0, 8.0, identity_above=True, zero_below=True)


def sigmoid_table() -> TableActivation:
    return TableActivation(exact_math.sigmoid, -16.0, 16.0)


def tanh_table() -> TableActivation:
    return TableActivation(exact_math.tanh, -8.0, 8.0)


class FixedLeakyReLU(nn.Module):
    """a for a >= 0, round(a slope) (one correctly rounded product, then round half
    to even) below: the same everywhere. For 0 <= slope <= 1 that is
    max(a, round(a slope)), as a slope <= a exactly when a >= 0 (and the rounding
    keeps it so, a being an integer), the other way below."""

    def __init__(self, slope: float):
        super().__init__()
        self.slope = float(slope)
        if not 0.0 <= self.slope <= 1.0:
            raise ValueError("fixed-point leaky ReLU slopes lie in [0, 1]")

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        x = array(a)
        out = np.multiply(x, self.slope)
        np.rint(out, out=out)
        return torch.from_numpy(np.maximum(x, out, out=out))


class FixedMean(nn.Module):
    """AdaptiveAvgPool2d(1): the exact sum (below 2^53 for any image under the
    pixel limit), divided with rounding in int64."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        n = a.shape[2] * a.shape[3]
        total = array(a).sum(axis=(2, 3), keepdims=True).astype(np.int64)
        return torch.from_numpy(((2 * total + n) // (2 * n)).astype(np.float64))


class FixedPixelShuffle(nn.Module):
    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(a, self.factor)


def fixed_layer(module: nn.Module, arena: Arena | None = None) -> nn.Module:
    """The fixed-point counterpart of one float layer of the entropy networks (its
    weights from `arena` if given)."""
    from .layers import SubpelConv3x3  # the float layers this module mirrors

    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return FixedConv(module, arena=arena)
    if isinstance(module, nn.GELU):
        if module.approximate != "none":
            raise ValueError("only the exact (erf) GELU has a fixed-point table")
        return gelu_table()
    if isinstance(module, nn.LeakyReLU):
        return FixedLeakyReLU(module.negative_slope)
    if isinstance(module, nn.Sigmoid):
        return sigmoid_table()
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return FixedMean()
    if isinstance(module, SubpelConv3x3):
        return nn.Sequential(FixedConv(module.conv, arena=arena), FixedPixelShuffle(2))
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(fixed_layer(m, arena) for m in module))
    raise TypeError(f"no fixed-point form of {type(module).__name__}")

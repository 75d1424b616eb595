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
below 2^53; float64 then holds every partial sum exactly, in whatever order,
blocking or band plan the convolution sums them, and the result is the exact
integer acc. It is rescaled to floor(acc 2^-s + 1/2), which float64 computes
exactly (a power-of-two scaling, then a sum whose bits still fit 53). The
bound is checked when the layer is built (a weight that cannot meet it raises)
and by tests/test_fixed_point.py at the layer widths of every configuration.

Products of two activations are exact where both factors are bounded so that
the product stays below 2^53 (`multiply`; the RAT's per-pixel kernels and the
features they filter are clamped to DPS_LIMIT for it). Nonlinearities are
integer tables (`exact_math`, the same bits everywhere) with linear
interpolation in the same exact arithmetic. No step reads a libm function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...entropy import activation_tables, exact_math
from ...entropy.activation_tables import FRAC_BITS, SUBSTEP
from .conv_bands import band_convolutions

ONE = 1 << FRAC_BITS
ACT_LIMIT = (1 << 30) - 1  # |activation| < 2^14
DPS_LIMIT = (1 << 26) - 1  # the RAT's kernels and features: their products < 2^52
EXACT_SUM_LIMIT = 1 << 53  # float64 holds every integer below it
MAX_WEIGHT_SHIFT = 40
# nonlinearities: integer tables interpolated linearly (`activation_tables`)
_SUBSTEP = SUBSTEP


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """float64 values -> activations (round half to even, then clamp)."""
    return torch.round(x.to(torch.float64) * ONE).clamp_(-ACT_LIMIT, ACT_LIMIT)


def to_float(a: torch.Tensor) -> torch.Tensor:
    """activations -> float64 values (exact: a power-of-two scale)."""
    return a / ONE


def rescale(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """floor(acc / 2^shift + 1/2) of integers |acc| < 2^53, in place."""
    if shift == 0:
        return acc
    return acc.mul_(2.0**-shift).add_(0.5).floor_()


def multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The activation a * b, for factors whose product stays below 2^53."""
    return rescale(a * b, FRAC_BITS)


class FixedConv(nn.Module):
    """An nn.Conv2d or nn.ConvTranspose2d on activations, exactly (see the module
    docstring for the bound)."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, limit: int = ACT_LIMIT):
        super().__init__()
        self.limit = limit  # of the outputs (ACT_LIMIT, or DPS_LIMIT in the RAT)
        weight = conv.weight.detach().to("cpu", torch.float64)
        bias = (conv.bias.detach().to("cpu", torch.float64) if conv.bias is not None
                else torch.zeros(weight.shape[0 if isinstance(conv, nn.Conv2d) else 1],
                                 dtype=torch.float64))
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        if self.transposed and conv.groups != 1:
            raise ValueError("grouped transposed convolutions are not supported")
        # the taps that reach one output channel: (in / groups, kh, kw) of a
        # convolution's weight row; all of a transposed convolution's (in, kh, kw)
        out_dim, sum_dims = (1, (0, 2, 3)) if self.transposed else (0, (1, 2, 3))
        self.shift, w_int, b_int = _weights_for_exact_sums(weight, bias, out_dim, sum_dims)
        self.stride, self.padding, self.groups = conv.stride, conv.padding, conv.groups
        self.output_padding = getattr(conv, "output_padding", (0, 0))
        if self.transposed:
            self.register_buffer("weight", w_int)
            self.register_buffer("bias", b_int)
        else:
            # an integer-valued float64 copy of the layer: its row bands
            # (conv_bands) sum the same integers exactly
            layer = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                              conv.stride, conv.padding, conv.dilation, conv.groups,
                              dtype=torch.float64)
            with torch.no_grad():
                layer.weight.copy_(w_int)
                layer.bias.copy_(b_int)
            self.layer = band_convolutions(layer.requires_grad_(False))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        # a holds activations (|a| <= ACT_LIMIT): every layer here clamps what it
        # produces, and so does each place that makes activations otherwise
        if self.transposed:
            acc = F.conv_transpose2d(a, self.weight, self.bias, self.stride, self.padding,
                                     self.output_padding, self.groups)
        else:
            acc = self.layer(a)
        return rescale(acc, self.shift).clamp_(-self.limit, self.limit)


def _weights_for_exact_sums(weight: torch.Tensor, bias: torch.Tensor, out_dim: int,
                            sum_dims: tuple[int, ...]
                            ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """The largest shift s <= MAX_WEIGHT_SHIFT for which every output channel's
    sum_j |round(w_j 2^s)| ACT_LIMIT + |round(b 2^(16+s))| < 2^53, with those
    integer weights and biases (float64). The sums are taken in int64: exact,
    so the choice of s is the same on every machine. The search starts one above
    a float estimate of s (the estimate may differ between machines, but it
    never lands below the largest s that passes the exact test, which decides)."""
    l1_float = float(weight.abs().sum(dim=sum_dims).max())
    start = MAX_WEIGHT_SHIFT
    if l1_float > 0:
        start = min(start, int(np.floor(np.log2(EXACT_SUM_LIMIT / ACT_LIMIT / l1_float))) + 1)
    for shift in range(max(start, 0), -1, -1):
        w_int = torch.round(weight * 2.0**shift)
        b_int = torch.round(bias * 2.0**(FRAC_BITS + shift))
        if w_int.abs().max() >= EXACT_SUM_LIMIT or b_int.abs().max() >= EXACT_SUM_LIMIT:
            continue
        l1 = w_int.to(torch.int64).abs().sum(dim=sum_dims)
        if out_dim == 1 and l1.dim() > 1:
            l1 = l1.reshape(-1)
        # l1 * ACT_LIMIT could overflow int64 for a huge l1: compare in float
        # first (far from that edge), then exactly
        if float(l1.max()) * ACT_LIMIT < 2.0**62:
            worst = l1 * ACT_LIMIT + b_int.to(torch.int64).abs()
            if int(worst.max()) < EXACT_SUM_LIMIT:
                return shift, w_int, b_int
    raise ValueError("weights too large for exact fixed-point sums")


def _table(fn, lo: float, hi: float) -> tuple[torch.Tensor, int]:
    """fn on the grid lo..hi every 2^-TABLE_BITS, as activations, and the index of lo
    (`activation_tables.table`: made once per process, shared by every layer)."""
    values, k0 = activation_tables.table(fn, lo, hi)
    return torch.from_numpy(values.copy()), k0


class TableActivation(nn.Module):
    """f on activations: integer table, linear interpolation between its entries;
    inputs beyond the table take its end values (or x itself with `identity_above`,
    GELU's asymptote; 0 with `zero_below`)."""

    def __init__(self, fn, lo: float, hi: float, identity_above: bool = False,
                 zero_below: bool = False):
        super().__init__()
        table, k0 = _table(fn, lo, hi)
        self.table = table  # the entries themselves (tests and docs read them)
        # entry i times 2^_SUBSTEP, and the step to entry i + 1 (0 after the last):
        # f(x) = (start[i] + step[i] * frac + half) >> _SUBSTEP
        self.register_buffer("start", (table << _SUBSTEP).to(torch.float64), persistent=False)
        self.register_buffer("step", torch.cat([table[1:] - table[:-1], table.new_zeros(1)])
                             .to(torch.float64), persistent=False)
        self.lo, self.hi = k0 << _SUBSTEP, (k0 + table.numel() - 1) << _SUBSTEP
        self.identity_above, self.zero_below = identity_above, zero_below

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        x = a.clamp(self.lo, self.hi).sub_(self.lo)
        index = torch.floor(x * 2.0**-_SUBSTEP)
        frac = x.sub_(index * (1 << _SUBSTEP))
        index = index.to(torch.int64)
        out = rescale(self.step[index].mul_(frac).add_(self.start[index]), _SUBSTEP)
        if self.identity_above:
            out = torch.where(a > self.hi, a, out)
        if self.zero_below:
            out = torch.where(a < self.lo, torch.zeros_like(out), out)
        return out


def gelu_table() -> TableActivation:
    return TableActivation(exact_math.gelu, -8.0, 8.0, identity_above=True, zero_below=True)


def sigmoid_table() -> TableActivation:
    return TableActivation(exact_math.sigmoid, -16.0, 16.0)


def tanh_table() -> TableActivation:
    return TableActivation(exact_math.tanh, -8.0, 8.0)


class FixedLeakyReLU(nn.Module):
    def __init__(self, slope: float):
        super().__init__()
        self.slope = float(slope)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        # one correctly rounded product, then round half to even: the same everywhere
        return torch.where(a < 0, torch.round(a * self.slope), a)


class FixedMean(nn.Module):
    """AdaptiveAvgPool2d(1): the exact sum (below 2^53 for any image under the
    pixel limit), divided with rounding in int64."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        n = a.shape[2] * a.shape[3]
        total = a.sum(dim=(2, 3), keepdim=True).to(torch.int64)
        return torch.div(2 * total + n, 2 * n, rounding_mode="floor").to(torch.float64)


class FixedPixelShuffle(nn.Module):
    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(a, self.factor)


def fixed_layer(module: nn.Module) -> nn.Module:
    """The fixed-point counterpart of one float layer of the entropy networks."""
    from .layers import SubpelConv3x3  # the float layers this module mirrors

    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return FixedConv(module)
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
        return nn.Sequential(FixedConv(module.conv), FixedPixelShuffle(2))
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(fixed_layer(m) for m in module))
    raise TypeError(f"no fixed-point form of {type(module).__name__}")

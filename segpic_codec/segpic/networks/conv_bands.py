"""The float64 entropy-parameter convolutions, computed a few rows at a time.

On the CPU a float64 convolution is an im2col buffer (Cin*k*k values per output
position) and one matrix product. For the 3x3 convolutions of ChARM and the
hyperprior synthesis that buffer is 28 MB at Kodak size and 600 MB at 3840x2160
(Cin 256, 135 x 240 latents): above glibc's mmap threshold it is mapped and
page-faulted afresh on every call, and it was the largest allocation of a 4K
decode. A band of rows whose buffer stays near IM2COL_BYTES is reused from the
heap and stays in cache: the same products, about 2x faster at 4K (2 threads,
this machine). Smaller maps run whole.

Exactness: on the exact entropy path (`fixed_point.FixedConv`) inputs and
weights are integers sized so that every partial sum stays below 2^53, so a band
gives the whole convolution's integers bit for bit, whatever order the BLAS
kernel of the machine sums in (tests/test_conv_bands.py). On the float64 path of
older files a band equals the whole convolution up to rounding: on some CPUs
bit for bit, on others (measured: AMD EPYC) not, which is why new files use the
exact path. No band is a single column (MIN_BAND_POSITIONS), so the kernel that
a band uses is the one the whole convolution uses wherever that helps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IM2COL_BYTES = 8 << 20  # the im2col buffer of one band, about
# only convolutions whose whole im2col exceeds this are banded: glibc maps each
# allocation above 32 MB afresh, smaller ones come back from the heap, and at
# Kodak size (28 MB at most) the bands' smaller matrix products cost more than
# they save (measured: about 0.79 -> 0.85 s per Kodak encode, 2 threads)
BAND_ABOVE_BYTES = 32 << 20
# every band's matrix product has at least this many columns (output positions):
# with a single column MKL takes another kernel (matrix-vector) that sums in
# another order, which would break the equality with the whole convolution
MIN_BAND_POSITIONS = 64


class RowBandedConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, same state-dict keys) whose forward runs in
    bands of rows; made from an existing one by `band_convolutions`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_conv2d_in_bands(x, self.weight, self.bias, self.groups)


def same_conv2d_in_bands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         groups: int = 1) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=k // 2, groups=groups) of an odd square
    kernel k (a `bandable` layer's), in bands of rows where that helps."""
    rows = _rows_per_band(weight, x)
    h = x.shape[2]
    p = weight.shape[2] // 2
    if rows >= h:
        return F.conv2d(x, weight, bias, 1, p, 1, groups)
    out = torch.empty((x.shape[0], weight.shape[0], h, x.shape[3]), dtype=x.dtype,
                      device=x.device)
    starts = list(range(0, h, rows))
    if h - starts[-1] < _min_rows(x):  # a thin last band joins the one before
        starts.pop()
    for r0, r1 in zip(starts, [*starts[1:], h], strict=True):
        a0, a1 = max(0, r0 - p), min(h, r1 + p)
        # the zero rows and columns that padding=p would have read, made explicit
        band = F.pad(x[:, :, a0:a1], (p, p, p - (r0 - a0), p - (a1 - r1)))
        out[:, :, r0:r1] = F.conv2d(band, weight, bias, 1, 0, 1, groups)
    return out


def rows_per_band(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """Output rows per band for input `x`: all of them if the whole im2col is at most
    BAND_ABOVE_BYTES, else as many as keep a band's near IM2COL_BYTES."""
    return _rows_per_band(conv.weight, x)


def _rows_per_band(weight: torch.Tensor, x: torch.Tensor) -> int:
    # weight (out, in / groups, k, k): one output row's im2col holds in / groups * k * k
    # values per position
    per_row = weight.shape[1] * weight.shape[2] * weight.shape[3] * x.shape[3] \
        * x.element_size()
    if per_row * x.shape[2] <= BAND_ABOVE_BYTES:
        return x.shape[2]
    return max(_min_rows(x), IM2COL_BYTES // max(1, per_row))


def _min_rows(x: torch.Tensor) -> int:
    return -(-MIN_BAND_POSITIONS // max(1, x.shape[3]))


def bandable(conv: nn.Module) -> bool:
    """A plain 'same' convolution: stride 1, no dilation, odd square kernel above 1x1
    (a 1x1 convolution has no im2col), zero padding of half the kernel."""
    if type(conv) is not nn.Conv2d:
        return False
    k = conv.kernel_size
    return (k[0] == k[1] and k[0] > 1 and k[0] % 2 == 1 and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.padding == (k[0] // 2, k[0] // 2)
            and conv.padding_mode == "zeros")


def band_convolutions(module: nn.Module) -> nn.Module:
    """Make every plain 'same' nn.Conv2d inside `module` a RowBandedConv2d (in
    place: the class changes, parameters and keys stay). Returns `module`."""
    for sub in module.modules():
        if bandable(sub):
            sub.__class__ = RowBandedConv2d
    return module

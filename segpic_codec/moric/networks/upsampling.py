"""Learned 2x upsampling of the latent pyramid to a dense (7, H, W) tensor.

Cool-Chic 5 style: from the coarsest grid, upsample the stack so far by 2,
crop it to the next grid's size and put that grid in front; repeat down to full
resolution. Each level has its own separable, symmetric 8-tap filter (4
parameters), initialised to bicubic interpolation, with replicated borders.

The filter is applied in polyphase form: output 2i sits at input i - 1/4 and
uses inputs i-2 .. i+1 (taps a c d b), output 2i+1 sits at i + 1/4 and uses
i-1 .. i+2 (taps b d c a), for the 8-tap kernel (a b c d d c b a). This is a
handful of shifted multiply-adds; PyTorch's CPU transposed convolution on one
channel is an order of magnitude slower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Keys' cubic (a = -0.75) at distances 1.75, 1.25, 0.75, 0.25
BICUBIC_TAPS = (-0.03515625, -0.10546875, 0.26171875, 0.87890625)


def upsample_1d(x: Tensor, taps: Tensor, dim: int) -> Tensor:
    """Double the size of `x` (C, H, W) along dim 1 (rows) or 2 (columns)."""
    a, b, c, d = taps.unbind()
    n = x.shape[dim]
    pad = (2, 2) if dim == 2 else (0, 0, 2, 2)
    padded = F.pad(x, pad, mode="replicate")
    s = [padded.narrow(dim, i, n) for i in range(5)]
    even = a * s[0] + c * s[1] + d * s[2] + b * s[3]
    odd = b * s[1] + d * s[2] + c * s[3] + a * s[4]
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


class _Upsample1d(torch.autograd.Function):
    """`upsample_1d` with a hand-written backward: a few in-place multiply-adds
    instead of autograd's graph of temporaries (the upsampling is elementwise
    work on the largest tensors of the step, so memory traffic is its cost)."""

    @staticmethod
    def forward(ctx, x: Tensor, taps: Tensor, dim: int) -> Tensor:
        a, b, c, d = taps.detach().tolist()
        n = x.shape[dim]
        pad = (2, 2) if dim == 2 else (0, 0, 2, 2)
        padded = F.pad(x, pad, mode="replicate")
        s = [padded.narrow(dim, i, n) for i in range(5)]
        shape = list(x.shape)
        shape.insert(dim + 1, 2)
        out = x.new_empty(shape)
        even, odd = out.select(dim + 1, 0), out.select(dim + 1, 1)
        torch.mul(s[0], a, out=even)
        even.add_(s[1], alpha=c).add_(s[2], alpha=d).add_(s[3], alpha=b)
        torch.mul(s[1], b, out=odd)
        odd.add_(s[2], alpha=d).add_(s[3], alpha=c).add_(s[4], alpha=a)
        ctx.save_for_backward(padded, taps)
        ctx.dim = dim
        return out.flatten(dim, dim + 1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        padded, taps = ctx.saved_tensors
        dim = ctx.dim
        a, b, c, d = taps.detach().tolist()
        n = padded.shape[dim] - 4
        shape = list(padded.shape)
        shape[dim] = n
        shape.insert(dim + 1, 2)
        g = grad.reshape(shape)
        ge, go = g.select(dim + 1, 0), g.select(dim + 1, 1)
        s = [padded.narrow(dim, i, n) for i in range(5)]
        grad_taps = None
        if ctx.needs_input_grad[1]:
            grad_taps = torch.stack([
                torch.sum(ge * s[0]) + torch.sum(go * s[4]),
                torch.sum(ge * s[3]) + torch.sum(go * s[1]),
                torch.sum(ge * s[1]) + torch.sum(go * s[3]),
                torch.sum((ge + go) * s[2]),
            ])
        grad_x = None
        if ctx.needs_input_grad[0]:
            gp = torch.zeros_like(padded)
            gs = [gp.narrow(dim, i, n) for i in range(5)]
            gs[0].add_(ge, alpha=a)
            gs[1].add_(ge, alpha=c).add_(go, alpha=b)
            gs[2].add_(ge, alpha=d).add_(go, alpha=d)
            gs[3].add_(ge, alpha=b).add_(go, alpha=c)
            gs[4].add_(go, alpha=a)
            # replicated borders: the padding's gradient goes to the edge samples
            grad_x = gp.narrow(dim, 2, n).clone()
            grad_x.narrow(dim, 0, 1).add_(gp.narrow(dim, 0, 2).sum(dim, keepdim=True))
            grad_x.narrow(dim, n - 1, 1).add_(gp.narrow(dim, n + 2, 2).sum(dim, keepdim=True))
        return grad_x, grad_taps, None


def upsample_2d(x: Tensor, taps: Tensor) -> Tensor:
    if x.device.type == "cpu":  # .tolist() would synchronise a GPU at every call
        return _Upsample1d.apply(_Upsample1d.apply(x, taps, 2), taps, 1)
    return upsample_1d(upsample_1d(x, taps, 2), taps, 1)


class Upsampling(nn.Module):
    """num_grids - 1 learned 2x upsampling filters (one per level)."""

    def __init__(self, num_grids: int):
        super().__init__()
        self.taps = nn.Parameter(torch.tensor([BICUBIC_TAPS] * (num_grids - 1)))

    def forward(self, grids: list[Tensor]) -> Tensor:
        """grids: finest first, each (H_i, W_i) -> (num_grids, H_0, W_0)."""
        dense = grids[-1][None]
        for level in range(len(grids) - 2, -1, -1):
            rows, cols = grids[level].shape
            dense = upsample_2d(dense, self.taps[level])[:, :rows, :cols]
            dense = torch.cat([grids[level][None], dense], dim=0)
        return dense

    def macs_per_pixel(self, num_grids: int) -> float:
        # per channel and output pixel: 4 taps on the half-height horizontal
        # pass (2 MACs per output pixel) + 4 on the vertical pass
        return sum(6.0 * (num_grids - 1 - level) / 4**level for level in range(num_grids - 1))

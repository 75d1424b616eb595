"""Region-Adaptive Transform (RAT, Sec. 3.3, Fig. 3b and Fig. 5).

  x --CTL--> f ----------------------------+
  prototypes --expand by partition--> e    |
  [f, e] --DKG--> one 3x3 kernel per element (channel, pixel)
  DPSConv(f, kernels) --* CAG(.)--> 1x1 merge --> + x

DPSConv (Eq. 6) is a depthwise convolution whose kernel differs at every pixel
and channel. It is computed as a sum over the k*k shifts of the input, which needs
no unfold buffer (k*k times the feature map) and so keeps large images in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .bands import empty_like_rows
from .layers import conv1x1, inference
from .regions import Partition, expand_prototypes


def dps_conv(x: torch.Tensor, kernels: torch.Tensor, k: int) -> torch.Tensor:
    """Y[c,h,w] = sum_ij X[c,h+i,w+j] * W[c,(i,j),h,w]; kernels: (B, C, k*k, H, W)."""
    pad = k // 2
    _, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    if inference():  # the same sums, in two buffers
        out = torch.mul(xp[:, :, :h, :w], kernels[:, :, 0])
        term = torch.empty_like(out)
        for idx in range(1, k * k):
            i, j = divmod(idx, k)
            out.add_(torch.mul(xp[:, :, i : i + h, j : j + w], kernels[:, :, idx], out=term))
        return out
    out = None
    for idx in range(k * k):
        i, j = divmod(idx, k)
        term = xp[:, :, i : i + h, j : j + w] * kernels[:, :, idx]
        out = term if out is None else out + term
    return out


class RegionAdaptiveTransform(nn.Module):
    def __init__(self, channels: int, prototype_channels: int, kernel_size: int = 3):
        super().__init__()
        self.k = kernel_size
        mid = channels
        lrelu = nn.LeakyReLU(0.1)
        # Channel Transform Layers
        self.ctl = nn.Sequential(conv1x1(channels, mid), lrelu, conv1x1(mid, mid))
        # DPSConv Kernel Generator: fuse pixel + prototype, then a grouped conv
        # produces k*k weights per channel (grouped to keep it light, Sec. 3.3)
        self.dkg = nn.Sequential(
            conv1x1(mid + prototype_channels, mid),
            nn.LeakyReLU(0.1),
            nn.Conv2d(mid, mid, kernel_size, padding=kernel_size // 2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(mid, mid * kernel_size**2, kernel_size, padding=kernel_size // 2,
                      groups=mid),
        )
        # Channel Attention Generator
        self.cag = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), conv1x1(mid, mid), nn.LeakyReLU(0.1), conv1x1(mid, mid),
            nn.Sigmoid(),
        )
        self.merge = conv1x1(mid, channels)

    def forward(self, x: torch.Tensor, prototypes: torch.Tensor, partition: Partition
                ) -> torch.Tensor:
        return self._finish(x, self._filtered(x, prototypes, partition))

    def _filtered(self, x: torch.Tensor, prototypes: torch.Tensor, partition: Partition
                  ) -> torch.Tensor:
        """CTL -> DKG -> DPSConv: local (radius 3), so it can run in bands."""
        b, _, h, w = x.shape
        f = self.ctl(x)
        expanded = expand_prototypes(prototypes.to(f.dtype), partition)
        kernels = self.dkg(torch.cat([f, expanded], dim=1))
        kernels = kernels.view(b, f.shape[1], self.k * self.k, h, w)
        return dps_conv(f, kernels, self.k)

    def _finish(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """CAG (global: average pooling over the whole map) and the 1x1 merge."""
        if inference():
            return self.merge(out.mul_(self.cag(out))).add_(x)
        return x + self.merge(out * self.cag(out))

    def forward_banded(self, x: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
                       rows: int, margin: int = 8) -> torch.Tensor:
        """The same result as `forward`, computed in horizontal bands of `rows` rows
        (plus `margin` rows of context each side) so that the per-pixel kernels,
        k*k times the feature map, never exist for the whole image at once."""
        h = x.shape[2]
        if h <= rows:
            return self.forward(x, prototypes, partition)
        out = None
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
            band = Partition(partition.labels[:, a0:a1], partition.num_regions)
            part = self._filtered(x[:, :, a0:a1], prototypes, band)
            if out is None:
                out = empty_like_rows(part, h)
            out[:, :, r0:r1] = part[:, :, r0 - a0 : r1 - a0]
        return self._finish(x, out)

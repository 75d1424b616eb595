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

from .layers import conv1x1
from .regions import Partition, expand_prototypes


def dps_conv(x: torch.Tensor, kernels: torch.Tensor, k: int) -> torch.Tensor:
    """Y[c,h,w] = sum_ij X[c,h+i,w+j] * W[c,(i,j),h,w]; kernels: (B, C, k*k, H, W)."""
    pad = k // 2
    _, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
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
        b, _, h, w = x.shape
        f = self.ctl(x)
        expanded = expand_prototypes(prototypes.to(f.dtype), partition)
        kernels = self.dkg(torch.cat([f, expanded], dim=1))
        kernels = kernels.view(b, f.shape[1], self.k * self.k, h, w)
        out = dps_conv(f, kernels, self.k)
        out = out * self.cag(out)
        return x + self.merge(out)

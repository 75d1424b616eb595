"""Synthesis: MoRIC's Global Modulation Network (GMN) and Local Synthesis
Networks (LSN), with progressive concatenated modulation.

GMN (shared by all regions), on the upsampled latents z (7 channels):
    h1 = act(1x1: 7 -> F)      h2 = act(1x1: F -> 3)
    h3 = act(3x3(h2) + h2)     h4 = act(3x3(h3) + h3)
  and the shared modulation layers M_k (1x1, 3 + F + 3 (k + 1) -> 3).
LSN (one per region), on the pixel coordinates (x, y) in [-1, 1]:
    l1 = act(1x1: 2 -> 3)
    a1 = act(M_0[l1, h1, h2])           l2 = act(1x1(a1) + a1)
    a2 = act(M_1[l2, h1, h2, h3])       l3 = act(1x1(a2) + a2)
    a3 = act(M_2[l3, h1, h2, h3, h4])   image = 1x1(a3) + a3

Everything runs channels-first on (C, N) matrices (N = H * W): every 1x1
layer is one matrix product, and (C, N) is also a (1, C, H, W) image for the
3x3 layers, so no layout conversions are needed. The GMN features are stacked
once in the order h1 h2 h3 h4, so the modulation inputs are its leading rows
(contiguous slices) and need no concatenation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..file_format import NUM_GRIDS
from .regions import RegionSplit

LOCAL_WIDTH = 3


def activation(x: Tensor, kind: str) -> Tensor:
    """In place where the activation allows it (its backward needs only its output)."""
    return F.gelu(x) if kind == "gelu" else F.relu_(x)


def _linear_init(out_features: int, in_features: int, generator: torch.Generator | None
                 ) -> Tensor:
    # MoRIC's init: PyTorch's default (uniform +-1/sqrt(in)) divided by out**2
    bound = 1.0 / in_features**0.5
    weight = (torch.rand(out_features, in_features, generator=generator) * 2 - 1) * bound
    return weight / out_features**2


class _Conv3x3Replicate(torch.autograd.Function):
    """A 3x3 convolution with replicated borders and a hand-written backward:
    PyTorch's CPU convolution backward for 3 channels costs about four times
    its forward when it computes the input's gradient; here that gradient is
    one more convolution, and only the weights' gradient comes from
    convolution_backward (faster than a product over the nine shifted inputs:
    about 345 against 420 µs for a 44x768 band, one thread)."""

    @staticmethod
    def forward(ctx, image: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
        ctx.save_for_backward(padded, weight)
        return F.conv2d(padded, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        padded, weight = ctx.saved_tensors
        grad_image = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_padded = F.conv2d(F.pad(grad, (2, 2, 2, 2)), weight.flip(2, 3).transpose(0, 1))
            grad_image = torch.ops.aten.replication_pad2d_backward(
                grad_padded, padded[:, :, 1:-1, 1:-1], [1, 1, 1, 1])
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad, padded, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                [False, True, False])[1]
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_image, grad_weight, grad_bias


def conv3x3_replicate(x: Tensor, weight: Tensor, bias: Tensor, height: int, width: int
                      ) -> Tensor:
    """3x3 convolution with replicated borders of a (C, N) matrix; returns (C', N)."""
    image = x.reshape(1, x.shape[0], height, width)
    if x.device.type == "cpu":
        out = _Conv3x3Replicate.apply(image, weight, bias)
    else:
        out = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), weight, bias)
    return out.reshape(weight.shape[0], -1)


def _with_identity(weight: Tensor) -> Tensor:
    """W + I for a square 1x1 (2-D) or 3x3 (4-D) weight: a residual connection
    folded into the layer, one operation instead of two."""
    if weight.dim() == 2:
        return weight + torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
    dirac = torch.zeros_like(weight)
    dirac[range(weight.shape[0]), range(weight.shape[0]), 1, 1] = 1.0
    return weight + dirac


class GlobalModulationNetwork(nn.Module):
    def __init__(self, features: int, act: str = "gelu",
                 generator: torch.Generator | None = None):
        super().__init__()
        self.features = features
        self.act = act
        self.w1 = nn.Parameter(_linear_init(features, NUM_GRIDS, generator))
        self.b1 = nn.Parameter(torch.zeros(features))
        self.w2 = nn.Parameter(_linear_init(3, features, generator))
        self.b2 = nn.Parameter(torch.zeros(3))
        # residual 3x3 layers start at zero (identity + activation)
        self.w3 = nn.Parameter(torch.zeros(3, 3, 3, 3))
        self.b3 = nn.Parameter(torch.zeros(3))
        self.w4 = nn.Parameter(torch.zeros(3, 3, 3, 3))
        self.b4 = nn.Parameter(torch.zeros(3))
        # modulation layers M_k, shared by the regions: input [local (3), h1..]
        self.mod_w = nn.ParameterList()
        self.mod_b = nn.ParameterList()
        for k in range(3):
            inputs = LOCAL_WIDTH + features + 3 * (k + 1)
            self.mod_w.append(nn.Parameter(_linear_init(3, inputs, generator)))
            self.mod_b.append(nn.Parameter(torch.zeros(3)))

    def features_of(self, z: Tensor, height: int, width: int, crop: tuple[int, int] = (0, 0)
                    ) -> list[Tensor]:
        """(7, N) upsampled latents -> the GMN's contribution to each modulation
        layer, [(3, N')] * 3: P_k = M_k's weights on (h1 .. h_{k+2}) times those
        features, plus M_k's bias; all three in two matrix products.

        crop = (top, bottom) rows dropped after the 3x3 layers (see Synthesis)."""
        f = self.features
        # M_k sees h1 .. h_{k+2}: zero columns for the features it does not see
        mod = torch.cat([F.pad(w[:, LOCAL_WIDTH:], (0, 6 - 3 * k))
                         for k, w in enumerate(self.mod_w)])
        mod_bias = torch.cat(list(self.mod_b))
        h1 = activation(torch.addmm(self.b1[:, None], self.w1, z), self.act)
        # h2's layer and the modulations' h1 part share their input: one product
        # (its backward is then one product with 12 inner terms, not two thin ones)
        both = torch.addmm(torch.cat([self.b2, mod_bias])[:, None],
                           torch.cat([self.w2, mod[:, :f]]), h1)
        h2, projected = activation(both[:3], self.act), both[3:]
        h3 = activation(conv3x3_replicate(h2, _with_identity(self.w3), self.b3, height, width),
                        self.act)
        h4 = activation(conv3x3_replicate(h3, _with_identity(self.w4), self.b4, height, width),
                        self.act)
        top, bottom = crop
        if top or bottom:
            rows = slice(top * width, (height - bottom) * width)
            h2, h3, h4, projected = h2[:, rows], h3[:, rows], h4[:, rows], projected[:, rows]
        projected = torch.addmm(projected, mod[:, f:], torch.cat([h2, h3, h4]))
        return list(projected.split(3))

    def modulate(self, k: int, local: Tensor, projected: list[Tensor]) -> Tensor:
        """act(M_k [local, h1 .. h_{k+2}]) from the GMN's precomputed part."""
        return activation(torch.addmm(projected[k], self.mod_w[k][:, :LOCAL_WIDTH], local),
                          self.act)

    def macs_per_pixel(self) -> int:
        f = self.features
        mod = sum(3 * (LOCAL_WIDTH + f + 3 * (k + 1)) for k in range(3))
        return NUM_GRIDS * f + 3 * f + 2 * 81 + mod


class LocalSynthesisNetwork(nn.Module):
    """One region's synthesis from pixel coordinates, modulated by the GMN."""

    def __init__(self, act: str = "gelu", generator: torch.Generator | None = None):
        super().__init__()
        self.act = act
        self.w_in = nn.Parameter(_linear_init(LOCAL_WIDTH, 2, generator))
        self.b_in = nn.Parameter(torch.zeros(LOCAL_WIDTH))
        self.w_res = nn.Parameter(torch.zeros(3, LOCAL_WIDTH, LOCAL_WIDTH))
        self.b_res = nn.Parameter(torch.zeros(3, LOCAL_WIDTH))

    def forward(self, coords: Tensor, gmn: GlobalModulationNetwork, projected: list[Tensor]
                ) -> Tensor:
        """(2, N) coordinates, GMN projections -> (3, N) pixels."""
        x = activation(torch.addmm(self.b_in[:, None], self.w_in, coords), self.act)
        for k in range(3):
            a = gmn.modulate(k, x, projected)
            x = torch.addmm(self.b_res[k][:, None], _with_identity(self.w_res[k]), a)
            if k < 2:
                x = activation(x, self.act)
        return x

    def macs_per_pixel(self) -> int:
        return 2 * LOCAL_WIDTH + 3 * LOCAL_WIDTH * LOCAL_WIDTH


def pixel_coordinates(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(2, H * W): x then y, each from -1 to 1 (MoRIC's grid)."""
    x = torch.linspace(-1.0, 1.0, width, device=device) if width > 1 else \
        torch.zeros(1, device=device)
    y = torch.linspace(-1.0, 1.0, height, device=device) if height > 1 else \
        torch.zeros(1, device=device)
    return torch.stack([x.repeat(height), y.repeat_interleave(width)])


class Synthesis(nn.Module):
    """The shared GMN + one LSN per region."""

    def __init__(self, features: int = 16, act: str = "gelu", regions: int = 1,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.gmn = GlobalModulationNetwork(features, act, generator)
        self.lsns = nn.ModuleList(LocalSynthesisNetwork(act, generator) for _ in range(regions))

    def forward(self, z: Tensor, coords: Tensor, height: int, width: int,
                crop: tuple[int, int] = (0, 0), split: RegionSplit | None = None) -> Tensor:
        """(7, N) dense latents -> (3, N') image in [0, 1] (unclamped).

        crop = (top, bottom) rows to drop before the (pointwise) LSNs: a band of
        rows computed with halo rows, which only the 3x3 layers need.
        split: which LSN draws which of the N' output pixels (None: LSN 0
        draws all); pixels of regions the split leaves out are zero."""
        return self.draw(self.gmn.features_of(z, height, width, crop), coords, split)

    def draw(self, projected: list[Tensor], coords: Tensor, split: RegionSplit | None = None
             ) -> Tensor:
        """The LSNs' pixels from the GMN's projections (`GlobalModulationNetwork.features_of`)
        and the pixels' coordinates; `split` as in forward."""
        if split is None or split.whole:
            return self.lsns[0](coords, self.gmn, projected)
        stacked = torch.cat(projected)
        out = stacked.new_zeros(3, split.size)
        for lsn, idx in zip(self.lsns, split.indices, strict=True):
            if idx is None:
                continue
            part = stacked.index_select(1, idx)
            drawn = lsn(coords.index_select(1, idx), self.gmn, list(part.split(3)))
            out = out.index_copy(1, idx, drawn)
        return out

    def macs_per_pixel(self) -> int:
        return self.gmn.macs_per_pixel() + self.lsns[0].macs_per_pixel()

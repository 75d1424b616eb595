"""Building blocks of the analysis/synthesis transforms (WACNN backbone + SAL).

- `GDN`: generalized divisive normalization (Balle et al. 2017), or its inverse.
- `DownBlock` / `UpBlock`: a strided (transposed) 5x5 convolution with GDN and the
  paper's Scale Affine Layer (SAL, Sec. 3.3) beside it.
- `WindowAttentionModule`: the window attention module (WAM) of Zou et al. 2022,
  a residual-unit trunk gated by a (shifted) window self-attention branch.
- `SubpelConv3x3`: 3x3 convolution to 4x channels + PixelShuffle (2x upsampling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def inference() -> bool:
    """No autograd: the forwards below then reuse their buffers (in-place ops that
    compute the same values, bit for bit, as the out-of-place ones they replace,
    so the exact float64 path is unchanged) instead of allocating new tensors."""
    return not torch.is_grad_enabled()


def gelu_(x: torch.Tensor) -> torch.Tensor:
    """F.gelu in place (the same values)."""
    return torch._C._nn.gelu_(x)


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1)


class SubpelConv3x3(nn.Module):
    """2x upsampling: 3x3 conv to 4 * cout channels, then PixelShuffle(2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv3x3(cin, 4 * cout)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class GDN(nn.Module):
    """y = x / sqrt(beta + gamma * x^2) (or x * sqrt(...) when inverse).

    beta and gamma are kept non-negative by a squared reparametrisation with a
    small pedestal, which keeps gradients alive near zero.
    """

    _pedestal = 2.0**-18

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        ped = self._pedestal
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + ped))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + ped))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ped = self._pedestal
        beta = self.beta.clamp_min((1e-6 + ped) ** 0.5) ** 2 - ped
        gamma = self.gamma.clamp_min(ped**0.5) ** 2 - ped
        c = gamma.shape[0]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1).to(x.dtype), beta.to(x.dtype))
        if inference():
            norm.sqrt_()
            return norm.mul_(x) if self.inverse else torch.div(x, norm, out=norm)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


class ScaleAffineLayer(nn.Module):
    """SAL: two 1x1 convolutions with a GELU produce a scale and a bias per element,
    Y = X * (1 + Xs) + Xb. The `1 +` keeps the block an identity at initialisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            conv1x1(channels, channels), nn.GELU(), conv1x1(channels, 2 * channels)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, bias = self.net(x).chunk(2, dim=1)
        if inference():
            return (scale + 1).mul_(x).add_(bias)
        return x * (1 + scale) + bias


class DownBlock(nn.Module):
    """Conv 5x5 stride 2 -> GDN -> SAL (Fig. 2b)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=5, stride=2, padding=2)
        self.gdn = GDN(cout)
        self.sal = ScaleAffineLayer(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sal(self.gdn(self.conv(x)))


class UpBlock(nn.Module):
    """SAL -> transposed conv 5x5 stride 2 -> GDN (Fig. 2c and the authors' code) or,
    with `inverse_gdn` (the structure `small` and `tiny` were trained with), IGDN."""

    def __init__(self, cin: int, cout: int, inverse_gdn: bool = True):
        super().__init__()
        self.sal = ScaleAffineLayer(cin)
        self.tconv = nn.ConvTranspose2d(
            cin, cout, kernel_size=5, stride=2, padding=2, output_padding=1
        )
        # the attribute keeps its historical name: it is the state-dict key
        self.igdn = GDN(cout, inverse=inverse_gdn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.igdn(self.tconv(self.sal(x)))


class ResidualUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.net = nn.Sequential(
            conv1x1(channels, half), nn.GELU(), conv3x3(half, half), nn.GELU(),
            conv1x1(half, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inference():
            return gelu_(self.net(x).add_(x))
        return F.gelu(x + self.net(x))


ATTENTION_CHUNK_WINDOWS = 96  # windows per attention call in float32 inference


def _attention_with_bias(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         bias: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v, the sums of F.scaled_dot_product_attention's
    CPU path for a float mask, without its checks for fully masked rows (isneginf,
    all, where over every attention weight): 5x faster on the 8x8 windows of a
    Kodak image (12 -> 2.5 ms per 96 windows, 2 threads), and no row here is ever
    fully masked (the shifted-window mask is -100, not -inf)."""
    attn = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    return torch.matmul(attn.add_(bias).softmax(-1), v)


class WindowSelfAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position
    bias. With `shift` (Swin's shifted windows, what the authors' SegPIC uses with
    shift = window / 2), the map is rolled by -shift, tokens of the wrapped-around
    pieces are masked apart with -100, and the result is rolled back. Inputs must be
    a multiple of the window size (the codec pads images to the network stride,
    which guarantees it)."""

    def __init__(self, channels: int, heads: int, window: int, shift: int = 0):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.heads = heads
        self.window = window
        self.shift = shift
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.rel_bias = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + (window - 1)
        self.register_buffer("rel_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def _piece_masks(self) -> torch.Tensor:
        """(3, ws*ws, ws*ws) masks of the windows that hold wrapped-around pieces after
        the roll: those of the last window row, of the last window column, and the
        corner one. 0 between tokens of one piece, -100 across pieces (as in Swin)."""
        ws, s = self.window, self.shift
        part = (torch.arange(ws) >= ws - s).long()  # 0: own rows/cols, 1: wrapped ones
        zero = torch.zeros(ws, dtype=torch.long)
        masks = []
        for rows, cols in ((part, zero), (zero, part), (part, part)):
            label = (rows[:, None] * 2 + cols[None, :]).flatten()
            masks.append((label[:, None] != label[None, :]).float() * -100.0)
        return torch.stack(masks)

    def _attend(self, t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """t (..., ws*ws, C) tokens of windows -> attention output, same shape."""
        lead, (n, c) = t.shape[:-2], t.shape[-2:]
        t = t.reshape(-1, n, c)
        qkv = self.qkv(t).view(t.shape[0], n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if inference() and q.dtype == torch.float32:
            out = _attention_with_bias(q, k, v, bias.to(q.dtype))
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(t.shape[0], n, c)).view(*lead, n, c)

    def _attend_in_chunks(self, t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """`_attend` over (B, rows, cols, ws*ws, C) windows. Float32 inference goes
        a few rows of windows at a time: the attention weights of all windows at
        once (heads x (ws*ws)^2 per window) were the largest tensor of a Kodak
        decode. Windows are independent, so this is the same computation; the
        float64 (exact) path keeps its single call."""
        rows = max(1, ATTENTION_CHUNK_WINDOWS // max(1, t.shape[0] * t.shape[2]))
        if not inference() or t.dtype != torch.float32 or t.shape[1] <= rows:
            return self._attend(t, bias)
        out = torch.empty_like(t)
        for r0 in range(0, t.shape[1], rows):
            out[:, r0:r0 + rows] = self._attend(t[:, r0:r0 + rows], bias)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws, s = self.window, self.shift
        if h % ws or w % ws:
            raise ValueError(f"feature size {h}x{w} is not a multiple of window {ws}")
        t = torch.roll(x, shifts=(-s, -s), dims=(2, 3)) if s else x
        # (B, C, H, W) -> (B, rows of windows, cols of windows, ws*ws, C)
        t = t.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1)
        t = t.reshape(b, h // ws, w // ws, ws * ws, c)
        bias = self.rel_bias[:, self.rel_index]  # (heads, ws*ws, ws*ws)
        out = self._attend_in_chunks(t, bias)
        if s:
            # windows on the last row / column hold pieces that the roll wrapped
            # around: redo them with the mask (the others need none)
            m = self._piece_masks().to(device=x.device, dtype=bias.dtype)[:, None]
            out[:, -1, :-1] = self._attend(t[:, -1, :-1], bias + m[0])
            out[:, :-1, -1] = self._attend(t[:, :-1, -1], bias + m[1])
            out[:, -1, -1] = self._attend(t[:, -1, -1], bias + m[2])
        out = out.view(b, h // ws, w // ws, ws, ws, c).permute(0, 5, 1, 3, 2, 4)
        out = out.reshape(b, c, h, w)
        if s:
            out = torch.roll(out, shifts=(s, s), dims=(2, 3))
        return x + out


class WindowAttentionModule(nn.Module):
    """WAM (Zou et al. 2022): out = x + trunk(x) * sigmoid(attention_branch(x))."""

    def __init__(self, channels: int, heads: int, window: int, shift: int = 0):
        super().__init__()
        self.trunk = nn.Sequential(*(ResidualUnit(channels) for _ in range(3)))
        self.gate = nn.Sequential(
            WindowSelfAttention(channels, heads, window, shift),
            *(ResidualUnit(channels) for _ in range(3)),
            conv1x1(channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inference():
            return self.gate(x).sigmoid_().mul_(self.trunk(x)).add_(x)
        return x + self.trunk(x) * torch.sigmoid(self.gate(x))

"""The latent canvas (all grids in one parameter) and its quantisation proxies.

Latent values are stored divided by a gain (Cool-Chic's trick: an Adam step on
the stored value moves the quantised value `gain` times further, a cheap way to
give the latents their own, larger learning rate).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..bitstream.canvas import Canvas

QuantizerMode = Literal["softround", "softround_alone", "ste", "hard"]


def softround(x: Tensor, temperature: float) -> Tensor:
    """Differentiable rounding (Agustsson & Theis 2020); -> round(x) as T -> 0."""
    floor = torch.floor(x)
    delta = x - floor - 0.5
    return floor + 0.5 * torch.tanh(delta / temperature) / np.tanh(0.5 / temperature) + 0.5


def quantize(x: Tensor, mode: QuantizerMode, temperature: float = 0.3,
             noise: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Training-time stand-ins for round(x).

    softround: softround(softround(x) + gaussian noise) (C3 / Cool-Chic 5): the
      noise stops the synthesis from inverting the soft rounding.
    softround_alone: softround(x) without noise.
    ste: round(x) forward, softround's gradient backward.
    hard: round(x), no gradient to x.
    """
    if mode == "hard":
        return torch.round(x)
    if mode == "ste":
        soft = softround(x, temperature)
        return soft + (torch.round(x) - soft).detach()
    soft = softround(x, temperature)
    if mode == "softround_alone" or noise <= 0:
        return soft
    return softround(soft + noise * torch.randn(x.shape, generator=generator,
                                                device=x.device, dtype=x.dtype), temperature)


class LatentCanvas(nn.Module):
    """All latent grids of one image as a single (rows, cols) parameter.

    Margins stay zero: `mask` (1 on latents, 0 on margins) is applied after
    quantisation, so the noise added there never reaches the ARM context.
    """

    def __init__(self, canvas: Canvas, gain: float = 16.0, keep: np.ndarray | None = None):
        """keep: (numel,) bool, the latents that are coded (single-object coding
        leaves out those no object pixel needs); all when None."""
        super().__init__()
        self.canvas = canvas
        self.gain = gain
        self.values = nn.Parameter(torch.zeros(canvas.shape))
        mask = torch.zeros(canvas.numel)
        index = canvas.latent_index if keep is None else np.flatnonzero(keep)
        mask[torch.from_numpy(index)] = 1.0
        self.register_buffer("mask", mask.view(canvas.shape), persistent=False)

    def quantized(self, mode: QuantizerMode, temperature: float = 0.3, noise: float = 0.0,
                  generator: torch.Generator | None = None) -> Tensor:
        """The decoder-side canvas (integers, or their training proxy)."""
        return quantize(self.values * self.gain, mode, temperature, noise, generator) * self.mask

    def integers(self) -> Tensor:
        """The latents as coded: round(gain * value), int64, margins zero."""
        return (torch.round(self.values.detach() * self.gain) * self.mask).to(torch.int64)

    def set_integers(self, values: Tensor) -> None:
        with torch.no_grad():
            self.values.copy_(values.to(self.values) / self.gain)

    def clamp_(self, low: int, high: int) -> None:
        """Keep the latents inside the codable alphabet [low, high]."""
        with torch.no_grad():
            self.values.clamp_(low / self.gain, high / self.gain)


def split_grids(canvas_values: Tensor, canvas: Canvas) -> list[Tensor]:
    """Views of each grid (finest first) in a (rows, cols) canvas tensor."""
    return [canvas_values[rows, cols] for rows, cols in canvas.grid_slices()]

"""The latents' start: a small analysis network, learned offline, that maps the
image to latents the prior's decoder already turns into a picture.

A zero start spends an encode's first steps finding latents that draw the
image at all. The networks start from the shipped prior (`prior`), so they
speak the same "latent language" on every image, and a network can learn that
language's inverse once, offline (`latent_init_fit`, training photographs
only). An encode would then start from the analysis' output instead of zeros:
the encoder's business alone, files and the decoder would not change.

It does not pay yet at a minute's budget (`bench/results/moric-time/recipe-prior/`):
the first optimiser steps move every latent by about the same amount (Adam's
early steps are near their sign), so the start's low rate is gone within ten
steps, and its lead in PSNR within a hundred. None is shipped; the recipe's
`latent_init` names a file, for experiments.

Each latent grid has its own small convolutional network. It reads the image
average-pooled to the grid's size and the rate-distortion weight λ, and writes
that grid's latents in quantisation steps (the coded integers' scale). An
analysis fits the prior it learned against.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bitstream.canvas import Canvas
from ..file_format import NUM_GRIDS
from .recipe import LAMBDA_AT_MAX, LAMBDA_AT_MIN

WIDTH = 16  # hidden channels of each grid's network


class LatentInit(nn.Module):
    def __init__(self, grids: int = NUM_GRIDS, width: int = WIDTH):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(4, width, 3, padding=1, padding_mode="replicate"), nn.GELU(),
                          nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"),
                          nn.GELU(), nn.Conv2d(width, 1, 1))
            for _ in range(grids))
        for level in self.levels:  # start near the zero latents of a plain encode
            nn.init.normal_(level[-1].weight, std=1e-3)
            nn.init.zeros_(level[-1].bias)

    def forward(self, image: Tensor, lmbda: float, sizes: list[tuple[int, int]]) -> list[Tensor]:
        """image (3, H, W) in [0, 1] -> each grid's latents (rows, cols), finest first."""
        # the rate-distortion trade-off as 0 (quality 1) .. 1 (quality 6)
        t = math.log(lmbda / LAMBDA_AT_MIN) / math.log(LAMBDA_AT_MAX / LAMBDA_AT_MIN)
        grids = []
        for level, size in zip(self.levels, sizes, strict=True):
            pooled = F.adaptive_avg_pool2d(image[None], size)
            x = torch.cat([pooled - 0.5, pooled.new_full((1, 1, *size), t)], dim=1)
            grids.append(level(x)[0, 0])
        return grids


def to_canvas(grids: list[Tensor], canvas: Canvas) -> Tensor:
    """Grids (finest first) -> the (rows, cols) canvas tensor, margins zero."""
    out = grids[0].new_zeros(canvas.shape)
    for grid, (rows, cols) in zip(grids, canvas.grid_slices(), strict=True):
        out[rows, cols] = grid
    return out


@functools.lru_cache(maxsize=4)
def load_latent_init(path: str) -> LatentInit:
    """An analysis saved by `scripts/moric_fit_latent_init.py`."""
    from safetensors.torch import load_file

    model = LatentInit()
    model.load_state_dict(load_file(path))
    return model.eval().requires_grad_(False)


@torch.no_grad()
def initial_latents(analysis: LatentInit, target: Tensor, height: int, width: int,
                    lmbda: float, canvas: Canvas) -> Tensor:
    """target (3, N) -> the start of the latent canvas, in quantisation steps."""
    image = target.reshape(3, height, width).float().cpu()
    return to_canvas(analysis(image, lmbda, canvas.sizes), canvas).to(target.device)

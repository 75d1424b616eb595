"""Factorized densities of z, p' and p, with or without learned median offsets.

`make_density(channels, median_offsets)` gives the plain `FactorizedDensity`
(values are quantized around 0: the structure `small` and `tiny` were trained
with) or a `MedianFactorizedDensity`, CompressAI's EntropyBottleneck as the
authors' SegPIC uses it: values v are quantized as round(v - m) + m around a learned
per-channel median m = quantiles[:, 0, 1].

Both take their inputs in the *symbol domain*: the integers that are coded, or
(training) the noisy values they stand for. For the median density that is v - m,
and it models v - m, so its pmf table is the pmf of the symbols themselves; its
likelihood of v - m equals CompressAI's likelihood of v (`_logits_cumulative` adds m
back before the cumulative).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...entropy.entropy_models import FactorizedDensity


class MedianFactorizedDensity(FactorizedDensity):
    def __init__(self, channels: int, init_scale: float = 10.0, tail_mass: float = 1e-9):
        super().__init__(channels, init_scale=init_scale)
        # CompressAI's (lower tail, median, upper tail) per channel; the tails only
        # serve the auxiliary loss that places them (see `quantile_loss`)
        init = torch.tensor([-init_scale, 0.0, init_scale])
        self.quantiles = nn.Parameter(init.repeat(channels, 1, 1))
        target = math.log(2 / tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]), persistent=False)

    @property
    def medians(self) -> torch.Tensor:
        """(C,): the value each channel's symbols are centred on."""
        return self.quantiles[:, 0, 1]

    def _logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        # x: (C, 1, n) in the symbol domain -> the cumulative of v = x + m
        return super()._logits_cumulative(x + self.medians.view(-1, 1, 1).to(x.dtype))

    def _exact_cumulative(self, x):  # numpy (C, n), see FactorizedDensity
        medians = self.medians.detach().double().cpu().numpy()[:, None]
        return super()._exact_cumulative(x + medians)

    def quantile_loss(self) -> torch.Tensor:
        """CompressAI's auxiliary loss: moves `quantiles` (only them) to the tails and
        the median of the density."""
        saved = [p.detach() for p in (*self.matrices, *self.biases, *self.factors)]
        logits = self.quantiles
        for i, matrix in enumerate(saved[: len(self.matrices)]):
            logits = torch.matmul(nn.functional.softplus(matrix), logits)
            logits = logits + saved[len(self.matrices) + i]
            if i < len(self.factors):
                factor = saved[2 * len(self.matrices) + i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return torch.abs(logits - self.target).sum()


def make_density(channels: int, median_offsets: bool) -> FactorizedDensity:
    return MedianFactorizedDensity(channels) if median_offsets else FactorizedDensity(channels)


def medians_of(density: FactorizedDensity) -> torch.Tensor | None:
    """The per-channel offsets of a density's symbols, or None (centred on 0)."""
    return density.medians if isinstance(density, MedianFactorizedDensity) else None

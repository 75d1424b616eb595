"""Variable rate through gain units (Cui et al. 2021).

One weights file covers every quality: each quality level q has a per-channel
gain that scales a latent before quantization and an inverse gain applied after.
A fractional quality interpolates the log-gains of its two neighbours, which
gives a continuous rate control between the trained levels.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def quality_to_index(quality: float, num_qualities: int) -> float:
    """User-facing quality 1..L (1 = smallest file) -> gain index 0..L-1."""
    if not (1.0 <= quality <= num_qualities):
        raise ValueError(f"quality must be between 1 and {num_qualities}, got {quality}")
    return float(quality) - 1.0


class QualityGain(nn.Module):
    def __init__(self, num_qualities: int, channels: int, spread: float = 0.35,
                 lambdas: tuple[float, ...] | None = None):
        super().__init__()
        # Initialise with larger gains (finer quantization) for larger lambdas,
        # proportional to lambda**spread, centred on 1.
        if lambdas is None:
            lambdas = tuple(2.0**i for i in range(num_qualities))
        logs = torch.tensor([math.log(lam) for lam in lambdas])
        init = spread * (logs - logs.mean())
        self.log_gain = nn.Parameter(init.view(-1, 1).repeat(1, channels))
        self.log_inverse_gain = nn.Parameter(-init.view(-1, 1).repeat(1, channels))

    @property
    def num_qualities(self) -> int:
        return self.log_gain.shape[0]

    def _interpolate(self, table: torch.Tensor, q: float) -> torch.Tensor:
        q = min(max(float(q), 0.0), self.num_qualities - 1.0)
        lo = int(math.floor(q))
        hi = min(lo + 1, self.num_qualities - 1)
        t = q - lo
        return torch.exp((1 - t) * table[lo] + t * table[hi])

    def forward(self, q: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(gain, inverse_gain), each of shape (channels,)."""
        return self._interpolate(self.log_gain, q), self._interpolate(self.log_inverse_gain, q)


class UnitGain(nn.Module):
    """The gains of a fixed-rate network (`ModelConfig.gain_units=False`): all ones,
    no parameters. Multiplying by them is exact, so the network computes what it
    would without gain units; `q` is ignored (one network per quality level)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("ones", torch.ones(channels), persistent=False)

    @property
    def num_qualities(self) -> int:
        return 1

    def forward(self, q: float) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ones, self.ones


def make_gain(gain_units: bool, lambdas: tuple[float, ...], channels: int) -> nn.Module:
    """Per-quality gain units, or unit gains for a fixed-rate network."""
    if gain_units:
        return QualityGain(len(lambdas), channels, lambdas=lambdas)
    return UnitGain(channels)

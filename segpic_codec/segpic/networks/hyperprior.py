"""The z stream: a hyperprior (Table 4 of the paper) whose hyper-latent z is coded
with a factorized model, and whose decoder predicts the means and scales that
condition the channel-wise autoregressive model of y. The RAT of the entropy
model sits on both sides: before the hyper-analysis and after each
hyper-synthesis, guided by the y prototypes p.

z symbols are round(z - m), with m the density's per-channel median (0 when the
model has no median offsets); the hyper-synthesis sees symbols + m.
"""

from __future__ import annotations

import torch
from torch import nn

from ...entropy.entropy_models import add_uniform_noise, ste_round
from .densities import make_density, medians_of
from .layers import SubpelConv3x3, conv3x3
from .quality import make_gain
from .rat import RegionAdaptiveTransform
from .regions import Partition


def _hyper_analysis(M: int, hidden: tuple[int, int, int], Z: int) -> nn.Sequential:
    h0, h1, h2 = hidden
    return nn.Sequential(
        conv3x3(M, M), nn.GELU(),
        conv3x3(M, h0), nn.GELU(),
        conv3x3(h0, h1, stride=2), nn.GELU(),
        conv3x3(h1, h2), nn.GELU(),
        conv3x3(h2, Z, stride=2),
    )


def _tconv3x3_up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


def _hyper_synthesis(Z: int, hidden: tuple[int, int, int], M: int, upsample: str
                     ) -> nn.Sequential:
    h0, h1, h2 = hidden
    up = SubpelConv3x3 if upsample == "subpel" else _tconv3x3_up
    return nn.Sequential(
        conv3x3(Z, Z), nn.GELU(),
        up(Z, h2), nn.GELU(),
        conv3x3(h2, h1), nn.GELU(),
        up(h1, h0), nn.GELU(),
        conv3x3(h0, M),
    )


class HyperpriorCodec(nn.Module):
    def __init__(self, M: int, Z: int, hidden: tuple[int, int, int], prototype_channels: int,
                 lambdas: tuple[float, ...], upsample: str = "tconv",
                 median_offsets: bool = False, gain_units: bool = True):
        super().__init__()
        self.rat_analysis = RegionAdaptiveTransform(M, prototype_channels)
        self.h_a = _hyper_analysis(M, hidden, Z)
        self.h_s_means = _hyper_synthesis(Z, hidden, M, upsample)
        self.h_s_scales = _hyper_synthesis(Z, hidden, M, upsample)
        self.rat_means = RegionAdaptiveTransform(M, prototype_channels)
        self.rat_scales = RegionAdaptiveTransform(M, prototype_channels)
        self.density = make_density(Z, median_offsets)
        self.gain = make_gain(gain_units, lambdas, Z)

    def _medians(self, dtype: torch.dtype) -> torch.Tensor | None:
        medians = medians_of(self.density)
        return None if medians is None else medians.view(1, -1, 1, 1).to(dtype)

    def _analyze(self, y: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
                 q: float) -> torch.Tensor:
        """z - median (in the gained domain): the values whose rounding gives the symbols."""
        gain, _ = self.gain(q)
        z = self.h_a(self.rat_analysis(y, prototypes, partition))
        z = z * gain.view(1, -1, 1, 1).to(z.dtype)
        medians = self._medians(z.dtype)
        return z if medians is None else z - medians

    def synthesize(self, z_hat: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
                   q: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Symbols of z (or their noisy/rounded training stand-ins) -> (latent_means,
        latent_scales)."""
        _, inverse_gain = self.gain(q)
        z = z_hat.to(inverse_gain.dtype)
        medians = self._medians(z.dtype)
        if medians is not None:
            z = z + medians
        z = z * inverse_gain.view(1, -1, 1, 1)
        z = z.to(next(self.h_s_means.parameters()).dtype)
        means = self.rat_means(self.h_s_means(z), prototypes, partition)
        scales = self.rat_scales(self.h_s_scales(z), prototypes, partition)
        return means, scales

    def forward(self, y: torch.Tensor, prototypes: torch.Tensor, partition: Partition, q: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (latent_means, latent_scales, log-likelihoods of z)."""
        z = self._analyze(y, prototypes, partition, q).float()
        log_likelihoods = self.density.log_likelihood(add_uniform_noise(z).permute(0, 2, 3, 1))
        means, scales = self.synthesize(ste_round(z), prototypes, partition, q)
        return means, scales, log_likelihoods

    def analyze(self, y: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
                q: float) -> torch.Tensor:
        """Integer symbols of z, (B, Z, h, w)."""
        return torch.round(self._analyze(y, prototypes, partition, q)).to(torch.int64)

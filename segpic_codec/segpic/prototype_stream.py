"""The prototype stream (Fig. 4): region prototypes are compressed by a small
per-prototype transform (1x1 convolutions with GDN), quantized, and coded with a
factorized model. SegPIC has two of them: p' from the mid-level encoder features
(shared by the RAT of the encoder and of the decoder) and p from the latent y
(used by the RAT of the entropy model).

Training path: `forward` (noisy likelihoods, straight-through rounding).
Bitstream path: `analyze` -> symbols -> `DiscreteFactorized.encode`, and
`DiscreteFactorized.decode` -> symbols -> `synthesize`, the same on both sides.
"""

from __future__ import annotations

import torch
from torch import nn

from ..entropy.entropy_models import FactorizedDensity, add_uniform_noise, ste_round
from .layers import GDN, conv1x1
from .quality import QualityGain


def _stack(widths: tuple[int, ...], inverse: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(conv1x1(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(GDN(widths[i + 1], inverse=inverse))
    return nn.Sequential(*layers)


class PrototypeCodec(nn.Module):
    def __init__(self, widths: tuple[int, ...], lambdas: tuple[float, ...]):
        super().__init__()
        self.analysis = _stack(widths, inverse=False)
        self.synthesis = _stack(tuple(reversed(widths)), inverse=True)
        self.density = FactorizedDensity(widths[-1])
        self.gain = QualityGain(len(lambdas), widths[-1], lambdas=lambdas)

    @property
    def latent_channels(self) -> int:
        return self.density.channels

    def _analyze(self, prototypes: torch.Tensor, q: float) -> torch.Tensor:
        gain, _ = self.gain(q)
        return self.analysis(prototypes[:, :, None, None]).flatten(1) * gain

    def forward(self, prototypes: torch.Tensor, q: float) -> tuple[torch.Tensor, torch.Tensor]:
        """prototypes (R, C) -> (reconstructed prototypes (R, C), log-likelihoods (R, C'))."""
        latent = self._analyze(prototypes, q).float()
        log_likelihoods = self.density.log_likelihood(add_uniform_noise(latent))
        return self.synthesize(ste_round(latent), q), log_likelihoods

    def analyze(self, prototypes: torch.Tensor, q: float) -> torch.Tensor:
        """Integer symbols (R, C') of the prototypes."""
        return torch.round(self._analyze(prototypes, q)).to(torch.int64)

    def synthesize(self, symbols: torch.Tensor, q: float) -> torch.Tensor:
        _, inverse_gain = self.gain(q)
        dtype = inverse_gain.dtype
        latent = symbols.to(dtype=dtype, device=inverse_gain.device) * inverse_gain
        return self.synthesis(latent[:, :, None, None]).flatten(1)

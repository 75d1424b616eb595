"""The prototype stream (Fig. 4): region prototypes are compressed by a small
per-prototype transform (1x1 convolutions with GDN), quantized, and coded with a
factorized model. SegPIC has two of them: p' from the mid-level encoder features
(shared by the RAT of the encoder and of the decoder) and p from the latent y
(used by the RAT of the entropy model).

Symbols are round(latent - m), with m the density's per-channel median (0 when
the model has no median offsets); the decoder's latent is symbols + m.

Training path: `forward` (noisy likelihoods, straight-through rounding).
Bitstream path: `analyze` -> symbols -> `DiscreteFactorized.encode`, and
`DiscreteFactorized.decode` -> symbols -> `synthesize`, the same on both sides.
"""

from __future__ import annotations

import torch
from torch import nn

from ...entropy.entropy_models import add_uniform_noise, ste_round
from .densities import make_density, medians_of
from .layers import GDN, conv1x1
from .quality import make_gain


def _stack(widths: tuple[int, ...], inverse: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(conv1x1(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(GDN(widths[i + 1], inverse=inverse))
    return nn.Sequential(*layers)


class PrototypeCodec(nn.Module):
    def __init__(self, widths: tuple[int, ...], lambdas: tuple[float, ...],
                 synthesis_widths: tuple[int, ...] | None = None,
                 median_offsets: bool = False, gain_units: bool = True):
        super().__init__()
        self.analysis = _stack(widths, inverse=False)
        synthesis_widths = synthesis_widths or tuple(reversed(widths))
        self.synthesis = _stack(tuple(synthesis_widths), inverse=True)
        self.density = make_density(widths[-1], median_offsets)
        self.gain = make_gain(gain_units, lambdas, widths[-1])

    @property
    def latent_channels(self) -> int:
        return self.density.channels

    def _centred(self, prototypes: torch.Tensor, q: float) -> torch.Tensor:
        """latent - median, the values whose rounding gives the symbols."""
        gain, _ = self.gain(q)
        latent = self.analysis(prototypes[:, :, None, None]).flatten(1) * gain
        medians = medians_of(self.density)
        return latent if medians is None else latent - medians.to(latent.dtype)

    def forward(self, prototypes: torch.Tensor, q: float) -> tuple[torch.Tensor, torch.Tensor]:
        """prototypes (R, C) -> (reconstructed prototypes (R, C), log-likelihoods (R, C'))."""
        centred = self._centred(prototypes, q).float()
        log_likelihoods = self.density.log_likelihood(add_uniform_noise(centred))
        return self.synthesize(ste_round(centred), q), log_likelihoods

    def analyze(self, prototypes: torch.Tensor, q: float) -> torch.Tensor:
        """Integer symbols (R, C') of the prototypes."""
        return torch.round(self._centred(prototypes, q)).to(torch.int64)

    def synthesize(self, symbols: torch.Tensor, q: float) -> torch.Tensor:
        _, inverse_gain = self.gain(q)
        dtype = inverse_gain.dtype
        latent = symbols.to(dtype=dtype, device=inverse_gain.device)
        medians = medians_of(self.density)
        if medians is not None:
            latent = latent + medians.to(dtype)
        latent = latent * inverse_gain
        return self.synthesis(latent[:, :, None, None]).flatten(1)

"""The y streams: channel-wise autoregressive model (ChARM, Minnen & Singh 2020)
with latent residual prediction, y split into `num_slices` slices along channels,
one coded stream per slice.

For slice i the mean and scale come from the hyperprior's (region-adapted)
means/scales and the already decoded slices (at most `max_support_slices` of
them); after decoding, latent residual prediction (LRP) adds
0.5 * tanh(lrp(...)) to reduce the quantization error.

Training path: `forward`. Bitstream path: `slice_params` and `finish_slice`,
called identically by the encoder and the decoder (see `segpic.codec`).
"""

from __future__ import annotations

import torch
from torch import nn

from ...entropy.entropy_models import add_uniform_noise, gaussian_log_likelihood, ste_round
from .layers import conv3x3


def _transform(cin: int, hidden: tuple[int, ...], cout: int) -> nn.Sequential:
    widths = (cin, *hidden, cout)
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(conv3x3(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class ChannelARCodec(nn.Module):
    def __init__(self, M: int, num_slices: int, max_support: int, hidden: tuple[int, ...]):
        super().__init__()
        self.num_slices = num_slices
        self.max_support = max_support
        s = M // num_slices
        self.slice_channels = s
        self.mean_transforms = nn.ModuleList(
            _transform(M + s * min(i, max_support), hidden, s) for i in range(num_slices)
        )
        self.scale_transforms = nn.ModuleList(
            _transform(M + s * min(i, max_support), hidden, s) for i in range(num_slices)
        )
        self.lrp_transforms = nn.ModuleList(
            _transform(M + s * min(i + 1, max_support + 1), hidden, s) for i in range(num_slices)
        )

    def slice_params(self, i: int, latent_means: torch.Tensor, latent_scales: torch.Tensor,
                     decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        support = decoded[: self.max_support]
        mu = self.mean_transforms[i](torch.cat([latent_means, *support], dim=1))
        scale = self.scale_transforms[i](torch.cat([latent_scales, *support], dim=1))
        return mu, scale

    def finish_slice(self, i: int, latent_means: torch.Tensor, decoded: list[torch.Tensor],
                     y_hat_slice: torch.Tensor) -> torch.Tensor:
        support = decoded[: self.max_support]
        lrp = self.lrp_transforms[i](torch.cat([latent_means, *support, y_hat_slice], dim=1))
        return y_hat_slice + 0.5 * torch.tanh(lrp)

    def forward(self, y: torch.Tensor, latent_means: torch.Tensor, latent_scales: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (y_hat, log-likelihoods), both shaped like y."""
        decoded: list[torch.Tensor] = []
        log_likelihoods = []
        for i, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu, scale = self.slice_params(i, latent_means, latent_scales, decoded)
            log_likelihoods.append(gaussian_log_likelihood(
                add_uniform_noise(y_slice.float()), mu.float(), scale.float()))
            y_hat_slice = ste_round(y_slice - mu) + mu
            decoded.append(self.finish_slice(i, latent_means, decoded, y_hat_slice))
        return torch.cat(decoded, dim=1), torch.cat(log_likelihoods, dim=1)

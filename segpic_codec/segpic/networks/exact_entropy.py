"""The exact entropy path: SegPIC's entropy parameters computed so that they are
the same bits on every machine, for files flagged `exact_entropy`.

It mirrors the float64 path of `model.SegPIC` (the modules in CODING_COPIES and
the entropy prototypes) step for step:

    p symbols -> prototype synthesis (ordered float64) -> p^ -> activations
    z symbols -> + medians, * inverse gain -> activations -> h_s -> RAT(p^)
              -> means, scales (activations)
    per slice: ChARM mean/scale transforms -> mu, scale -> scale level
               y^ = symbols + mu + tanh(LRP) / 2   (`exact_charm`)

The convolutions and nonlinearities are `fixed_point` layers (integer-exact).
The entropy prototypes are a few vectors: their 1x1 layers and inverse GDN run
as float64 sums in a fixed order (one correctly rounded multiply and add at a
time, and sqrt, which IEEE rounds correctly), which is as reproducible and
costs a few milliseconds. Gains come from `exact_math.exp`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...entropy import exact_math
from .fixed_point import (
    DPS_LIMIT,
    FRAC_BITS,
    Arena,
    FixedConv,
    array,
    clamp_,
    concat,
    fixed_layer,
    multiply,
    scaled_product,
    to_fixed,
)
from .hyperprior import HyperpriorCodec
from .layers import GDN
from .prototype_stream import PrototypeCodec
from .quality import QualityGain
from .rat import RegionAdaptiveTransform
from .regions import Partition, expand_prototypes


def exact_gains(gain: nn.Module, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(gain, inverse gain) of a gain unit at quality index q, float64, exactly."""
    if not isinstance(gain, QualityGain):
        ones = np.ones(gain.ones.numel())
        return ones, ones
    q = min(max(float(q), 0.0), gain.num_qualities - 1.0)
    lo = int(np.floor(q))
    hi = min(lo + 1, gain.num_qualities - 1)
    t = q - lo

    def interpolate(table: torch.Tensor) -> np.ndarray:
        logs = table.detach().double().cpu().numpy()
        return exact_math.exp((1.0 - t) * logs[lo] + t * logs[hi])

    return interpolate(gain.log_gain), interpolate(gain.log_inverse_gain)


def _medians(density: nn.Module) -> np.ndarray | None:
    medians = getattr(density, "medians", None)
    return None if medians is None else medians.detach().double().cpu().numpy()


def _ordered_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x (R, in) @ weight (out, in).T + bias, summed over `in` in index order."""
    out = np.broadcast_to(bias, (x.shape[0], bias.size)).copy()
    for j in range(x.shape[1]):
        out = out + x[:, j : j + 1] * weight[:, j]
    return out


def _ordered_gdn(x: np.ndarray, gdn: GDN) -> np.ndarray:
    """GDN's forward (the same reparametrisation) with ordered sums."""
    ped = gdn._pedestal
    beta = np.maximum(gdn.beta.detach().double().cpu().numpy(), np.sqrt(1e-6 + ped))
    gamma = np.maximum(gdn.gamma.detach().double().cpu().numpy(), np.sqrt(ped))
    norm = np.sqrt(_ordered_linear(x * x, gamma * gamma - ped, beta * beta - ped))
    return x * norm if gdn.inverse else x / norm


class ExactPrototypeSynthesis:
    """PrototypeCodec.synthesize with ordered float64 sums -> activations (R, C)."""

    def __init__(self, codec: PrototypeCodec):
        self.gain = codec.gain
        self.medians = _medians(codec.density)
        self.layers: list[tuple[str, object]] = []
        for layer in codec.synthesis:
            if isinstance(layer, nn.Conv2d):
                w = layer.weight.detach().double().cpu().numpy()[:, :, 0, 0]
                self.layers.append(("conv", (w, layer.bias.detach().double().cpu().numpy())))
            elif isinstance(layer, GDN):
                self.layers.append(("gdn", layer))
            else:
                raise TypeError(f"no exact form of {type(layer).__name__}")

    def __call__(self, symbols: torch.Tensor, q: float) -> torch.Tensor:
        _, inverse_gain = exact_gains(self.gain, q)
        x = symbols.detach().cpu().numpy().astype(np.float64)
        if self.medians is not None:
            x = x + self.medians
        x = x * inverse_gain
        for kind, params in self.layers:
            x = _ordered_linear(x, *params) if kind == "conv" else _ordered_gdn(x, params)
        return to_fixed(torch.from_numpy(x))


class FixedRAT(nn.Module):
    """RegionAdaptiveTransform on activations (the same steps, exactly)."""

    def __init__(self, rat: RegionAdaptiveTransform, arena: Arena | None = None):
        super().__init__()
        self.k = rat.k

        def ending_in_dps_limit(layers: nn.Sequential) -> nn.Sequential:
            # the features and kernels that DPSConv multiplies end in DPS_LIMIT
            return nn.Sequential(*(fixed_layer(m, arena) for m in layers[:-1]),
                                 FixedConv(layers[-1], DPS_LIMIT, arena))

        self.ctl = ending_in_dps_limit(rat.ctl)
        self.dkg = ending_in_dps_limit(rat.dkg)
        self.cag = fixed_layer(rat.cag, arena)
        self.merge = FixedConv(rat.merge, arena=arena)

    def forward(self, x: torch.Tensor, prototypes: torch.Tensor, partition: Partition
                ) -> torch.Tensor:
        b, _, h, w = x.shape
        f = self.ctl(x)
        kernels = self.dkg(concat([f, expand_prototypes(prototypes, partition)]))
        kernels = array(kernels).reshape(b, f.shape[1], self.k * self.k, h, w)
        # DPSConv: each product (< 2^52) rounded to an activation, then summed
        pad = self.k // 2
        fp = np.pad(array(f) * 2.0**-FRAC_BITS, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        out = np.zeros(f.shape)
        term = np.empty(f.shape)
        for idx in range(self.k * self.k):
            i, j = divmod(idx, self.k)
            out += scaled_product(fp[:, :, i : i + h, j : j + w], kernels[:, :, idx], term)
        gated = torch.from_numpy(clamp_(out))
        multiply(out, array(self.cag(gated)), out=out)
        merged = self.merge(gated)
        return torch.from_numpy(clamp_(np.add(array(merged), array(x), out=array(merged))))


class ExactHyperSynthesis(nn.Module):
    """HyperpriorCodec.synthesize: z symbols -> (means, scales) activations."""

    def __init__(self, hyperprior: HyperpriorCodec, arena: Arena | None = None):
        super().__init__()
        self.gain = hyperprior.gain
        self.medians = _medians(hyperprior.density)
        self.h_s_means = fixed_layer(hyperprior.h_s_means, arena)
        self.h_s_scales = fixed_layer(hyperprior.h_s_scales, arena)
        self.rat_means = FixedRAT(hyperprior.rat_means, arena)
        self.rat_scales = FixedRAT(hyperprior.rat_scales, arena)

    def forward(self, z_sym: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
                q: float) -> tuple[torch.Tensor, torch.Tensor]:
        _, inverse_gain = exact_gains(self.gain, q)
        z = z_sym.to(torch.float64)
        if self.medians is not None:
            z = z + torch.from_numpy(self.medians).view(1, -1, 1, 1)
        z = to_fixed(z * torch.from_numpy(inverse_gain).view(1, -1, 1, 1))
        means = self.rat_means(self.h_s_means(z), prototypes, partition)
        scales = self.rat_scales(self.h_s_scales(z), prototypes, partition)
        return means, scales

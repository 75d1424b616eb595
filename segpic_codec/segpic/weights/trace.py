"""Every intermediate of one deterministic pass through a `SegPIC` network, named
and laid out as in the authors' test vector ($SEGPIC_SHARED/reference/segpic-authors,
`inputs_outputs.safetensors`): what their `forward(x, None, grid)` computes in eval
mode, i.e. with rounding (around the medians) instead of noise.

It runs our modules as they are (the grid partition, MAP, the prototype codecs,
the RATs, the hyperprior, the ChARM steps), in the model's dtype and device, and
is what tests/test_segpic_authors.py and scripts/segpic_authors_check.py compare.
"""

from __future__ import annotations

import torch

from ...entropy.entropy_models import gaussian_log_likelihood
from ..networks.densities import medians_of
from ..networks.model import SegPIC
from ..networks.prototype_stream import PrototypeCodec
from ..networks.regions import Partition, grid_partition, masked_average_pool


def _grid_map(flat: torch.Tensor, grid: int) -> torch.Tensor:
    """(R, C) prototypes, R = grid*row + col -> (1, C, grid, grid)."""
    return flat.t().reshape(1, -1, grid, grid)


def _prototypes(codec: PrototypeCodec, features: torch.Tensor, part: Partition, grid: int,
                name: str, out: dict[str, torch.Tensor]) -> torch.Tensor:
    pooled = masked_average_pool(features, part).to(features.dtype)
    gain, _ = codec.gain(0.0)
    latent = codec.analysis(pooled[:, :, None, None]).flatten(1) * gain
    medians = medians_of(codec.density)
    m = torch.zeros_like(latent[0]) if medians is None else medians.to(latent.dtype)
    symbols = torch.round(latent - m)
    recon = codec.synthesize(symbols, 0.0)
    out.update({
        f"{name}_pooled": _grid_map(pooled, grid), f"{name}_latent": _grid_map(latent, grid),
        f"{name}_median": m, f"{name}_symbols": _grid_map(symbols, grid).to(torch.int32),
        f"{name}_hat": _grid_map(symbols + m, grid),
        f"{name}_likelihoods": _grid_map(codec.density.log_likelihood(symbols).exp(), grid),
        f"{name}_recon": _grid_map(recon, grid),
    })
    return recon


@torch.no_grad()
def trace(model: SegPIC, x: torch.Tensor, grid: int = 4, q: float = 0.0
          ) -> dict[str, torch.Tensor]:
    """x (1, 3, H, W), H and W multiples of 64 -> the named intermediates."""
    out: dict[str, torch.Tensor] = {}
    _, _, H, W = x.shape
    part_mid = grid_partition(1, H // 4, W // 4, grid, x.device)
    part_lat = grid_partition(1, H // 16, W // 16, grid, x.device)
    y1 = model.g_a1(x)
    p1 = _prototypes(model.transform_prototypes, y1, part_mid, grid, "pprime", out)
    y1_rat = model.rat_encoder(y1, p1, part_mid)
    gain, inverse_gain = model.y_gain(q)
    y = model.g_a2(y1_rat) * gain.view(1, -1, 1, 1)
    p2 = _prototypes(model.entropy_prototypes, y, part_lat, grid, "p", out)
    hyper = model.hyperprior
    y_rat = hyper.rat_analysis(y, p2, part_lat)
    z_gain, _ = hyper.gain(q)
    z = hyper.h_a(y_rat) * z_gain.view(1, -1, 1, 1)
    medians = medians_of(hyper.density)
    zm = torch.zeros_like(z[0, :, 0, 0]) if medians is None else medians.to(z.dtype)
    z_symbols = torch.round(z - zm.view(1, -1, 1, 1))
    z_lik = hyper.density.log_likelihood(z_symbols.permute(0, 2, 3, 1)).exp()
    z_hat = z_symbols + zm.view(1, -1, 1, 1)
    _, z_inverse_gain = hyper.gain(q)
    z_in = z_hat * z_inverse_gain.view(1, -1, 1, 1)
    means_hs, scales_hs = hyper.h_s_means(z_in), hyper.h_s_scales(z_in)
    means = hyper.rat_means(means_hs, p2, part_lat)
    scales = hyper.rat_scales(scales_hs, p2, part_lat)
    charm = model.charm
    decoded: list[torch.Tensor] = []
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("mu", "scale", "sym", "pre", "lrp",
                                                           "lik")}
    for i, y_slice in enumerate(y.chunk(charm.num_slices, dim=1)):
        mu, scale = charm.slice_params(i, means, scales, decoded)
        sym = torch.round(y_slice - mu)
        pre = sym + mu
        done = charm.finish_slice(i, means, decoded, pre)
        support = decoded[: charm.max_support]
        lrp = 0.5 * torch.tanh(charm.lrp_transforms[i](torch.cat([means, *support, pre], 1)))
        lik = gaussian_log_likelihood(pre, mu, scale).exp()
        for key, value in zip(rows, (mu, scale, sym, pre, lrp, lik), strict=True):
            rows[key].append(value)
        decoded.append(done)
    y_hat = torch.cat(decoded, dim=1) * inverse_gain.view(1, -1, 1, 1)
    g_s0_out = model.g_s0(y_hat)
    g_s0_rat = model.rat_decoder(g_s0_out, p1, part_mid)
    out.update({
        "y1": y1, "y1_rat": y1_rat, "y": y, "y_rat": y_rat, "z": z, "z_median": zm,
        "z_symbols": z_symbols.to(torch.int32), "z_hat": z_hat,
        "z_likelihoods": z_lik.permute(0, 3, 1, 2),
        "latent_means_hs": means_hs, "latent_scales_hs": scales_hs,
        "latent_means": means, "latent_scales": scales,
        "mu": torch.cat(rows["mu"], 1), "scale": torch.cat(rows["scale"], 1),
        "y_symbols": torch.cat(rows["sym"], 1).to(torch.int32),
        "y_hat_pre_lrp": torch.cat(rows["pre"], 1), "lrp": torch.cat(rows["lrp"], 1),
        "y_hat": y_hat, "y_likelihoods": torch.cat(rows["lik"], 1),
        "g_s0_out": g_s0_out, "g_s0_rat": g_s0_rat, "x_hat": model.g_s1(g_s0_rat),
    })
    return out

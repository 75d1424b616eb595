"""Learning the latents' start (`latent_init`) offline, on training photographs.

The decoder is the shipped prior's, frozen: upsampling, synthesis (one region,
its output bias set to the crop's mean colour, as an encode sets it) and the
ARM for the rate. The analysis alone learns, on the loss an encode minimises
early in its main phase: mse + λ · bits per pixel (its log, so that every
quality counts alike), with the latents
soft-rounded and noised at the main phase's starting temperature and noise.
Every crop gets a random quality. Only `../shared/data/train` is used, never
Kodak, on which the start is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..networks.latents import quantize
from ..networks.model import Architecture, MoricModel
from .latent_init import LatentInit, to_canvas
from .prior import apply_prior
from .prior_fit import random_crop
from .recipe import PRESETS, QUALITY_MAX, QUALITY_MIN, quality_to_lambda


@dataclass(frozen=True)
class LatentFitSettings:
    iterations: int = 1500
    batch: int = 4  # crops per iteration
    crop: int = 128
    lr: float = 2e-3  # Adam, cosine decay to a hundredth
    features: int = 24
    activation: str = "gelu"
    seed: int = 0


def _frozen_decoder(settings: LatentFitSettings, prior: dict[str, np.ndarray]) -> MoricModel:
    arch = Architecture(settings.features, settings.activation, 1)
    model = MoricModel(settings.crop, settings.crop, arch, PRESETS["medium"].latent_gain)
    apply_prior(model, prior)
    return model.requires_grad_(False)


def fit_latent_init(images: list[Path], prior: dict[str, np.ndarray], settings: LatentFitSettings,
                    log: Callable[[dict], None] | None = None, log_every: int = 50) -> LatentInit:
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    recipe = PRESETS["medium"]
    temperature, noise = recipe.temperature[0], recipe.noise[0]
    decoder = _frozen_decoder(settings, prior)
    canvas, n = decoder.canvas, settings.crop * settings.crop
    bias = decoder.synthesis.lsns[0].b_res[2]
    analysis = LatentInit()
    optimizer = torch.optim.Adam(analysis.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, settings.iterations, eta_min=settings.lr / 100)
    began, window = time.perf_counter(), []
    for iteration in range(1, settings.iterations + 1):
        optimizer.zero_grad(set_to_none=True)
        for _ in range(settings.batch):
            pixels = None
            while pixels is None:
                pixels = random_crop(images[int(rng.integers(len(images)))], settings.crop, rng)
            image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0
            target = image.reshape(3, -1)
            lmbda = quality_to_lambda(float(rng.uniform(QUALITY_MIN, QUALITY_MAX)))
            bias.copy_(target.mean(dim=1))
            latents = to_canvas(analysis(image, lmbda, canvas.sizes), canvas)
            q = quantize(latents, "softround", temperature, noise, generator) * decoder.latents.mask
            mse = decoder.squared_error(q, target) / (3 * n)
            loss = mse + lmbda * decoder.rate_bits(q) / n
            # the log: each quality's relative improvement counts alike (a loss at
            # quality 1 is ten times one at quality 6)
            (torch.log(loss) / settings.batch).backward()
            window.append((loss.item(), mse.item()))
        optimizer.step()
        schedule.step()
        if log is not None and iteration % log_every == 0:
            losses, mses = zip(*window, strict=True)
            log({"iteration": iteration, "loss": float(np.mean(losses)),
                 "mse": float(np.mean(mses)), "seconds": round(time.perf_counter() - began, 1)})
            window = []
    return analysis.eval().requires_grad_(False)

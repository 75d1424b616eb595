"""Learning the network prior offline: Reptile over short encodes.

Each iteration encodes a random crop of a training photograph at a random
quality with the real encoder, started from the current prior, for as many
steps as a short encode takes; the prior then moves a fraction of the way
towards the networks that encode ended with (Nichol et al., 2018). The prior
so becomes a start from which a few hundred steps go far, which is what a
short budget needs. The fraction falls linearly to zero, so the last
iterations average over many images instead of following the last one.

Only training photographs are used (`../shared/data/train`), never Kodak, on
which the prior is measured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..networks.model import Architecture, MoricModel
from .encoder import Budget, Optimisation
from .prior import network_state
from .recipe import PRESETS, QUALITY_MAX, QUALITY_MIN, quality_to_lambda


@dataclass(frozen=True)
class FitSettings:
    iterations: int = 60
    inner_steps: int = 200  # of each encode, as a short budget spends them
    crop: int = 256  # square crops: the latent grids need a multiple of 64
    outer_rate: float = 1.0  # Reptile's step towards each encode's networks, at the start
    features: int = 24
    activation: str = "gelu"
    seed: int = 0


def random_crop(path: Path, size: int, rng: np.random.Generator) -> np.ndarray | None:
    """A size x size RGB crop at a random place, or None if the photo is smaller."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    if height < size or width < size:
        return None
    y, x = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
    return pixels[y: y + size, x: x + size]


def fit_prior(images: list[Path], settings: FitSettings,
              log: Callable[[dict], None] | None = None,
              start: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Reptile from `start` (default: the random start an encode uses today)."""
    rng = np.random.default_rng(settings.seed)
    recipe = replace(PRESETS["medium"], features=settings.features,
                     activation=settings.activation).with_steps(settings.inner_steps)
    arch = Architecture(settings.features, settings.activation, 1)
    prior = start if start is not None else network_state(
        MoricModel(settings.crop, settings.crop, arch, recipe.latent_gain, seed=0))
    done = 0
    while done < settings.iterations:
        path = images[int(rng.integers(len(images)))]
        pixels = random_crop(path, settings.crop, rng)
        if pixels is None:
            continue
        quality = float(rng.uniform(QUALITY_MIN, QUALITY_MAX))
        target = torch.from_numpy(pixels.copy()).permute(2, 0, 1).reshape(3, -1).float() / 255.0
        began = time.perf_counter()
        optimisation = Optimisation(target, settings.crop, settings.crop,
                                    quality_to_lambda(quality), recipe,
                                    Budget(settings.inner_steps, None, began),
                                    seed=settings.seed * 100_000 + done, prior=prior)
        model, evaluation = optimisation.run()
        trained = network_state(model)
        rate = settings.outer_rate * (1.0 - done / settings.iterations)
        prior = {k: v + rate * (trained[k] - v) for k, v in prior.items()}
        done += 1
        if log is not None:
            log({"iteration": done, "image": path.name, "quality": round(quality, 3),
                 "psnr": round(evaluation.psnr, 3), "bpp": round(evaluation.bpp, 4),
                 "outer_rate": round(rate, 4), "seconds": round(time.perf_counter() - began, 2)})
    return prior


def log_to(path: Path) -> Callable[[dict], None]:
    def write(row: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
    return write

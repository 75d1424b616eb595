"""Coarse-to-fine trial (issue 22's "a better schedule"): optimise the image at
half size first, where a step costs about a quarter, then start the full-size
optimisation from what that learned, against a plain full-size run of the same
time. Optimisation only (one region, no coding), as `moric_experiment.py`.
The encoder now does this itself (`moric/training/coarse_start.py`, recipe
`coarse_share`), so the plain run here sets `coarse_share=0`; this script made
the first trial (`bench/results/moric-time/coarse-to-fine/runs.jsonl`), before
it did. It differs from the encoder's phase in two details: the half image is
rounded to 8 bits, and each region's output bias restarts at the mean colour.

At half size, latent grid g has the size of the full image's grid g + 1, and the
upsampling level that fills grid g does the job of the full image's level g + 1.
So the full run starts with grids 1..6 from the half run's grids 0..5 (grid 0 at
zero), the half run's upsampling levels and GMN input columns moved down one
grid, and every other
network (ARM, the GMN's other layers, the LSN) as the half run left it. The half
run's coarsest grid has no full-size counterpart and is dropped. The new finest
level interpolates (bicubic, a gain of 1): grid 1 then reaches the synthesis as
the half run's grid 0 did, not at the gain the prior's finest level learned
(0.61 per dimension, which scales every coarser grid); grid 0's GMN column is
the prior's.

    python scripts/moric_coarse_to_fine.py kodim23 --quality 2.5 --half-steps 160 \
        --steps 140 --out bench/results/moric-time/coarse-to-fine/runs.jsonl
    python scripts/moric_coarse_to_fine.py kodim23 --quality 2.5 --half-steps 0 \
        --steps 180 --out ...   # the plain run
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from moric_experiment import load

from segpic_codec.moric.bitstream.param_prior import load_prior_arrays
from segpic_codec.moric.training.coarse_start import moved_latents, moved_networks
from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.recipe import PRESETS, quality_to_lambda


def _target(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).reshape(3, -1).float() / 255.0


def _half(pixels: np.ndarray) -> np.ndarray:
    """2x2 box average (even sizes)."""
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    p = pixels[:2 * h, :2 * w].astype(np.float64).reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    return np.round(p).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--quality", type=float, default=2.5)
    parser.add_argument("--half-steps", type=int, default=160)
    parser.add_argument("--steps", type=int, default=140, help="full-size steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pixels = load(args.image, None)
    h, w = pixels.shape[:2]
    recipe = replace(PRESETS["medium"], coarse_share=0.0)  # the phase is done here
    lmbda = quality_to_lambda(args.quality)
    prior = load_prior_arrays(recipe.features, recipe.activation)
    start = time.perf_counter()
    full_prior, latent_start, half_s = prior, None, 0.0
    if args.half_steps:
        small = _half(pixels)
        half = Optimisation(_target(small), small.shape[0], small.shape[1], lmbda,
                            recipe.with_steps(args.half_steps),
                            Budget(args.half_steps, None, start), args.seed, prior=prior)
        model, _ = half.run()
        full_prior, latent_start = moved_networks(model, prior), moved_latents(model, h, w)
        half_s = time.perf_counter() - start
    full = Optimisation(_target(pixels), h, w, lmbda, recipe.with_steps(args.steps),
                        Budget(args.steps, None, time.perf_counter()), args.seed,
                        prior=full_prior)
    full.latent_start = latent_start
    _, final = full.run()
    seconds = time.perf_counter() - start
    row = {"image": Path(args.image).stem, "quality": args.quality,
           "half_steps": args.half_steps, "steps": args.steps, "bpp": round(final.bpp, 4),
           "psnr": round(final.psnr, 3), "loss": final.loss, "half_s": round(half_s, 1),
           "seconds": round(seconds, 1)}
    print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""Recipe experiments: run MoRIC's optimisation only (no coding) with recipe
overrides and print the hard-rounded result (latent bpp, PSNR) and step time.

    python scripts/moric_experiment.py kodim23 --crop 384x256 --steps 800 \
        --quality 4 --set lr=0.01 temperature=0.3,0.1 activation=relu

`--crop WxH` takes the image centre (fast iterations); bpp excludes the
network parameters (about 1 kB).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segpic_codec.moric.bitstream.param_prior import load_prior_arrays, prior_arrays
from segpic_codec.moric.measure import recipe_overrides
from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.latent_init import load_latent_init
from segpic_codec.moric.training.recipe import PRESETS, quality_to_lambda
from segpic_codec.shared_data import kodak_dir


def load(name: str, crop: str | None) -> np.ndarray:
    path = Path(name) if Path(name).exists() else kodak_dir() / f"{name}.png"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    if crop:
        w, h = (int(v) for v in crop.split("x"))
        top, left = (pixels.shape[0] - h) // 2, (pixels.shape[1] - w) // 2
        pixels = pixels[top:top + h, left:left + w]
    return np.ascontiguousarray(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--crop", default=None)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    parser.add_argument("--tag", default="")
    parser.add_argument("--prior-file", type=Path, default=None,
                        help="start the networks from this prior instead of the shipped one")
    parser.add_argument("--trace-every", type=int, default=100,
                        help="steps between the (soft-rounded) bpp and PSNR of the trace")
    parser.add_argument("--hard-trace", action="store_true",
                        help="trace hard-rounded evaluations (latent bpp, PSNR) instead")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    # as codec.encode: one intra-op thread, a second core through cpu_loss
    torch.set_num_threads(1)
    pixels = load(args.image, args.crop)
    h, w = pixels.shape[:2]
    recipe = replace(PRESETS[args.preset], **recipe_overrides(args.set))
    lmbda = quality_to_lambda(args.quality)
    target = torch.from_numpy(pixels).permute(2, 0, 1).reshape(3, -1).float() / 255.0
    # as codec.encode: the shipped network prior where the recipe asks for it
    prior = load_prior_arrays(recipe.features, recipe.activation) if recipe.prior else None
    if args.prior_file is not None:
        prior = prior_arrays(args.prior_file)
    latent_init = load_latent_init(recipe.latent_init) if recipe.latent_init else None
    trace = []
    totals = []  # the traced run's own steps (a coarse start's full-size run: fewer)

    def progress(info: dict) -> None:
        if "phase" in info:  # the coarse start's half-size run: not traced
            return
        totals.append(info["total"])
        if info["step"] % args.trace_every == 0:
            if args.hard_trace and opt.current is not None:
                hard = opt.evaluate(opt.current)
                info = {**info, "bpp": hard.bpp, "psnr": hard.psnr}
            trace.append((info["step"], round(info["bpp"], 4), round(info["psnr"], 2)))

    start = time.perf_counter()
    opt = Optimisation(target, h, w, lmbda, recipe, Budget(args.steps, None, start), args.seed,
                       progress, progress_every=args.trace_every, two_core=args.threads >= 2,
                       prior=prior, latent_init=latent_init)
    _, final = opt.run()
    seconds = time.perf_counter() - start
    row = {"tag": args.tag, "prior_file": args.prior_file and args.prior_file.name,
           "image": args.image, "crop": args.crop, "steps": args.steps,
           "trace_steps": totals[-1] if totals else args.steps, "quality": args.quality,
           "set": args.set, "bpp": round(final.bpp, 4),
           "psnr": round(final.psnr, 3), "loss": final.loss, "s_per_step":
           round(seconds / args.steps, 4), "trace": trace}
    print(json.dumps(row), flush=True)
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""Learn a start for MoRIC's latents: a small analysis network trained against
the shipped prior's frozen decoder on random crops of training photographs
(never Kodak); see `segpic_codec/moric/training/latent_init.py` (an experiment:
it does not pay yet, and none is shipped).

    python scripts/moric_fit_latent_init.py --iterations 1500 --out start.safetensors \
        --log bench/results/moric-time/recipe-prior/latent-init-fit.jsonl

One thread, about 8 minutes; an encode uses it with `--set latent_init=start.safetensors`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from segpic_codec.moric.bitstream.param_prior import required_prior
from segpic_codec.moric.training.latent_init_fit import LatentFitSettings, fit_latent_init
from segpic_codec.moric.training.prior_fit import log_to
from segpic_codec.shared_data import shared_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = LatentFitSettings()
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--crop", type=int, default=defaults.crop)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--features", type=int, default=defaults.features)
    parser.add_argument("--activation", default=defaults.activation)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, required=True, help="the analysis (.safetensors)")
    parser.add_argument("--log", type=Path, required=True, help="one JSON line per 50 iterations")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = LatentFitSettings(args.iterations, args.batch, args.crop, args.lr,
                                 args.features, args.activation, args.seed)
    images = sorted(shared_path("data", "train").glob("*.jpg"))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    prior = required_prior(args.features, args.activation)
    analysis = fit_latent_init(images, prior, settings, log_to(args.log))
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    note = json.dumps({"iterations": args.iterations, "batch": args.batch, "crop": args.crop,
                       "lr": args.lr, "seed": args.seed, "images": len(images)})
    save_file({k: v.contiguous() for k, v in analysis.state_dict().items()}, str(out),
              metadata={"format": "moric-latent-init", "note": note})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

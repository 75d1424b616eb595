"""Learn MoRIC's network prior (`weights/moric/prior-f{F}-{activation}`) by
Reptile over short encodes of training photographs (never Kodak); see
`segpic_codec/moric/training/prior_fit.py`.

    python scripts/moric_fit_prior.py --iterations 60 --inner-steps 200 \
        --log bench/results/moric-time/prior/fit-f24.jsonl

One thread; about 15 s per iteration at the defaults on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from segpic_codec.moric.bitstream.param_prior import prior_path
from segpic_codec.moric.training.prior import save_prior
from segpic_codec.moric.training.prior_fit import FitSettings, fit_prior, log_to
from segpic_codec.shared_data import shared_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = FitSettings()
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--inner-steps", type=int, default=defaults.inner_steps)
    parser.add_argument("--crop", type=int, default=defaults.crop)
    parser.add_argument("--features", type=int, default=defaults.features)
    parser.add_argument("--activation", default=defaults.activation)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--outer-rate", type=float, default=defaults.outer_rate,
                        help="Reptile's first step towards an encode's networks")
    parser.add_argument("--start", type=Path,
                        help="continue from this prior (default: a random start)")
    parser.add_argument("--out", type=Path, help="default: the shipped prior's path")
    parser.add_argument("--log", type=Path, required=True, help="one JSON line per iteration")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = FitSettings(args.iterations, args.inner_steps, args.crop, args.outer_rate,
                           features=args.features, activation=args.activation, seed=args.seed)
    start = None if args.start is None else load_file(str(args.start))
    images = sorted(shared_path("data", "train").glob("*.jpg"))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    prior = fit_prior(images, settings, log_to(args.log), start)
    out = args.out or prior_path(args.features, args.activation)
    note = json.dumps({"iterations": args.iterations, "inner_steps": args.inner_steps,
                       "crop": args.crop, "seed": args.seed, "images": len(images),
                       "outer_rate": args.outer_rate,
                       "start": None if args.start is None else args.start.name})
    save_prior(out, prior, args.features, args.activation, note)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

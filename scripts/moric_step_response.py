"""How a MoRIC run's end answers a change of λ made partway (the λ
controller's leverage, `rate_control.RATE_RESPONSE`, `leverage`, `UNSEEN`).

    # a run at a fixed λ, and the same run with λ x 1.5 from progress 0.3 on
    python scripts/moric_step_response.py run kodim05 --quality 2.5 --factor 1.0 \
        --out bench/results/targets/steps/kodim05.jsonl
    python scripts/moric_step_response.py run kodim05 --quality 2.5 --at 0.3 \
        --factor 1.5 --out bench/results/targets/steps/kodim05.jsonl
    # each step against the fixed run: at every update and at the end
    python scripts/moric_step_response.py compare bench/results/targets/steps/kodim05.jsonl

A run goes through the size-target path (so its hard-rounded evaluations come
at the controller's updates and are recorded), with the controller replaced by
the schedule: the quality's λ, times the factor from the first update at or
after `--at`. One thread; the default preset."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from moric_targets import _load, _row

from segpic_codec.moric.training import rate_control
from segpic_codec.moric.training.rate_control import COARSE
from segpic_codec.moric.training.recipe import quality_to_lambda


def run(args: argparse.Namespace) -> None:
    start = quality_to_lambda(args.quality)

    def scheduled(self: rate_control.LambdaController, bpp: float, psnr: float,
                  progress: float) -> float:
        self._next = progress + self.every
        self.lmbda = start * (args.factor if progress >= args.at else 1.0)
        self.history.append((round(progress, 4), bpp, psnr, self.lmbda))
        return self.lmbda

    # the controller's first guess and its updates, replaced for this process
    rate_control.first_lambda = lambda goal, anchor=None: start
    rate_control.LambdaController.update = scheduled
    pixels = _load(args.image)
    h, w = pixels.shape[:2]
    # the size is never reached for: the schedule ignores it
    row = _row(pixels, args.image, "bpp", 0.5, {"size": int(0.5 * h * w / 8)})
    row.update(step_at=args.at, factor=args.factor, lam0=start)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def compare(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in args.rows.open()]
    base = next(r for r in rows if r["factor"] == 1.0)
    for r in rows:
        if r is base:
            continue
        change = math.log(r["latent_bytes"] / base["latent_bytes"])
        print(f"{r['image']}: λ x {r['factor']} from {r['step_at']}: the end's latents "
              f"{change:+.4f} in ln ({change / math.log(r['factor']):+.3f} per unit of ln λ), "
              f"PSNR {r['psnr'] - base['psnr']:+.3f} dB")
        print("| progress | ln bpp now | ln predicted end | PSNR now |\n|--:|--:|--:|--:|")
        pairs = list(zip(base["steering"], r["steering"], strict=True))
        # from the first measurement made after λ moved
        moved = next(i for i, (a, b) in enumerate(pairs) if a[3] != b[3]) + 1
        for a, b in pairs[moved:]:
            predicted = math.log(COARSE.rate_at_end(b[1], b[0]) / COARSE.rate_at_end(a[1], a[0]))
            print(f"| {a[0]:.3f} | {math.log(b[1] / a[1]):+.4f} | {predicted:+.4f} "
                  f"| {b[2] - a[2]:+.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("image")
    p.add_argument("--quality", type=float, required=True)
    p.add_argument("--at", type=float, default=2.0, help="progress of the step (2: none)")
    p.add_argument("--factor", type=float, default=1.0)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("compare")
    p.add_argument("rows", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"run": run, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()

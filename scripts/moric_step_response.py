"""How a MoRIC run's end answers a change of λ made partway (the λ
controller's leverage, `rate_control.RATE_RESPONSE`, `leverage`, `UNSEEN`).

    # a run at a fixed λ, and the same run with λ x 1.5 from progress 0.3 on
    python scripts/moric_step_response.py run kodim05 --quality 2.5 --factor 1.0 \
        --out bench/results/targets/steps/kodim05.jsonl
    python scripts/moric_step_response.py run kodim05 --quality 2.5 --at 0.3 \
        --factor 1.5 --out bench/results/targets/steps/kodim05.jsonl
    # each step against the fixed run: at every update and at the end
    python scripts/moric_step_response.py compare bench/results/targets/steps/kodim05.jsonl
    # steered size encodes: how their ends relate to the later moves and to
    # the trend of their predictions (the controller's TREND)
    python scripts/moric_step_response.py closed-loop bench/results/targets/steered-last-?.jsonl

A run goes through the size-target path (so its hard-rounded evaluations come
at the controller's updates and are recorded), with the controller replaced by
the schedule: the quality's λ, times the factor from the first update at or
after `--at`. One thread; the default preset."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from moric_targets import _load, _row

from segpic_codec.moric.training import rate_control
from segpic_codec.moric.training.rate_control import COARSE, RATE_RESPONSE, UNSEEN, leverage
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


def closed_loop(args: argparse.Namespace) -> None:
    """Per update of steered size encodes (13 updates, the coarse-started
    table): (a) the end's ln latent bpp less the table's prediction, regressed
    on the ln λ moves still to come (confounded: λ moves when the image's error
    grows); (b) by the step-response model, the end less the estimate (the
    prediction with the moves not yet shown), with the later moves' effect
    added back, regressed on the estimate's change since the last update that
    the moves do not explain (the trend's coefficient)."""
    rows = [r for path in args.rows for r in map(json.loads, path.open())
            if r["kind"] == "bpp" and "latent_bytes" in r and len(r.get("steering") or []) == 13]
    fits: dict[int, list[tuple[float, float, float, float]]] = {}
    for r in rows:
        steering, pixels = r["steering"], 768 * 512
        end = math.log(8 * r["latent_bytes"] / pixels)
        moves = [0.0] + [math.log(steering[k][3] / steering[k - 1][3])
                         for k in range(1, len(steering))]
        unseen, last = 0.0, None
        for k, (progress, bpp, _, _) in enumerate(steering):
            table = math.log(COARSE.rate_at_end(bpp, progress))
            unseen *= UNSEEN
            estimate = table + unseen
            effect = -RATE_RESPONSE * leverage(progress) * moves[k]
            if last is not None:
                later = sum(-RATE_RESPONSE * leverage(steering[j][0]) * moves[j]
                            for j in range(k, len(steering)))
                fits.setdefault(k, []).append((end - table, math.log(steering[-1][3] /
                                               steering[k - 1][3]), end - estimate - later,
                                               estimate - last))
            unseen += effect
            last = estimate + effect
    print(f"{len(rows)} encodes\n| progress | (a) per unit of ln λ to come | (b) trend "
          "| rms of (b) without, with the trend |\n|--:|--:|--:|--:|")
    for k, values in sorted(fits.items()):
        y, x, z, w = (np.array(v) for v in zip(*values, strict=True))
        slope = np.polyfit(x, y, 1)[0]
        trend = float(np.dot(w, z) / np.dot(w, w))
        print(f"| {rows[0]['steering'][k][0]:.3f} | {slope:+.3f} | {trend:+.2f} "
              f"| {np.sqrt(np.mean(z ** 2)):.4f}, {np.sqrt(np.mean((z - trend * w) ** 2)):.4f} |")


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
    p = sub.add_parser("closed-loop")
    p.add_argument("rows", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"run": run, "compare": compare, "closed-loop": closed_loop}[args.command](args)


if __name__ == "__main__":
    main()

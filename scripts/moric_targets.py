"""MoRIC's rate and PSNR targets in one encode, measured (the CLI issue's table).

    # controlled encodes: each image at each target, the default preset
    python scripts/moric_targets.py run kodim01 kodim05 --bpp 0.25 0.5 1.0 \
        --psnr 30 33 36 --out bench/results/targets/steered.jsonl
    # fixed-λ encodes at the qualities those ended with (same rates, for BD-rate)
    python scripts/moric_targets.py fixed --from bench/results/targets/steered.jsonl \
        --out bench/results/targets/fixed.jsonl
    # where each size row's bytes went against the controller's aim
    python scripts/moric_targets.py landing bench/results/targets/steered.jsonl
    # the table; against the fixed-λ encodes (those of `fixed`, and --reference:
    # points files of `segpic bench` at the same preset), each steered file's rate
    # against their curve at its PSNR (BD-rate's fit), and per image BD-rate
    python scripts/moric_targets.py table bench/results/targets/steered.jsonl \
        bench/results/targets/fixed.jsonl [--reference POINTS.jsonl] [--replace AGAIN.jsonl]

One thread per encode (run two side by side on two cores); rows already in
`--out` are skipped, so a stopped run resumes. `run --steps N` and `--set
key=value ...` (recipe fields) change the budget and the recipe from the
default preset's, for checks off the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segpic_codec import codecs, container
from segpic_codec.bench.bd_rate import bd_rate, rate_at_psnr
from segpic_codec.moric.file_format import NUM_GRIDS
from segpic_codec.moric.measure import preset_overridden, recipe_overrides
from segpic_codec.moric.target_fit import AIM_SIZE, PARAMETER_BYTES
from segpic_codec.moric.training.rate_control import COARSE
from segpic_codec.moric.training.recipe import lambda_to_quality
from segpic_codec.quality_metrics import psnr_rgb
from segpic_codec.shared_data import kodak_dir
from segpic_codec.targets import PSNR_TOLERANCE, TargetNotMet


def _load(name: str) -> tuple[str, np.ndarray]:
    """(the rows' image name, its pixels): a Kodak image by name (kodim05), or
    any other photo by its path (named by its stem)."""
    path = Path(name) if Path(name).suffix else kodak_dir() / f"{name}.png"
    return path.stem, np.asarray(Image.open(path).convert("RGB"))


def _done(out: Path) -> set[tuple]:
    if not out.exists():
        return set()
    return {(r["image"], r["kind"], r["goal"]) for r in map(json.loads, out.open())}


def _row(pixels: np.ndarray, image: str, kind: str, goal: float, encode: dict,
         steps: int | None = None, overrides: list[str] | tuple = ()) -> dict:
    reports: list[dict] = []
    start = time.perf_counter()
    try:
        encoder = codecs.load_encoder("moric", progress=reports.append, steps=steps)
        with preset_overridden("medium", recipe_overrides(list(overrides))):
            result = encoder.encode(pixels, best_effort=True, **encode)
    except TargetNotMet as exc:  # not with best_effort; kept for clarity
        result = exc.closest
    seconds = time.perf_counter() - start
    decoded = codecs.decode(result.data)
    streams = container.split_streams(result.data, container.read_frame(result.data))
    h, w = pixels.shape[:2]
    return {"image": image, "kind": kind, "goal": goal, "file_bytes": len(result.data),
            **({"limit": encode["size"]} if "size" in encode else {}),
            # where the bytes went: what the controller predicts (the latents')
            # and what it estimates (the parameters')
            "params_bytes": len(streams[0]),
            "latent_bytes": sum(len(s) for s in streams[-NUM_GRIDS:]),
            "pixels": h * w, "bpp": 8 * len(result.data) / (h * w),
            "psnr": psnr_rgb(pixels, decoded),
            "met": result.target_met if kind != "fixed" else None,
            "quality": result.quality, "encode_s": round(seconds, 1),
            **({"steps": steps} if steps else {}),
            **({"set": list(overrides)} if overrides else {}),
            # how λ was steered: (progress, hard-rounded bpp, PSNR, λ after) per update
            "steering": next((r["steering"] for r in reversed(reports) if "steering" in r),
                             None)}


def run(args: argparse.Namespace) -> None:
    done = _done(args.out)
    for name in args.images:
        image, pixels = _load(name)
        h, w = pixels.shape[:2]
        jobs = [("bpp", b, {"size": int(b * h * w / 8)}) for b in args.bpp]
        jobs += [("psnr", p, {"psnr": p}) for p in args.psnr]
        for kind, goal, encode in jobs:
            if (image, kind, goal) in done:
                continue
            row = _row(pixels, image, kind, goal, encode, args.steps, args.set)
            if image != name:
                row["path"] = name
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def fixed(args: argparse.Namespace) -> None:
    done = _done(args.out)
    for r in map(json.loads, args.source.open()):
        key = (r["image"], "fixed", r["quality"])
        if key in done:
            continue
        row = _row(_load(r.get("path", r["image"]))[1], r["image"], "fixed", r["quality"],
                   {"quality": r["quality"]})
        done.add(key)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def _replaced(steered: list[dict], newer: list[dict]) -> list[dict]:
    """`steered` with each row that `newer` has again (same image, kind and goal)
    taken from `newer`, marked "again"."""
    again = {(r["image"], r["kind"], r["goal"]): dict(r, again=True) for r in newer}
    return [again.get((r["image"], r["kind"], r["goal"]), r) for r in steered]


KODAK_PIXELS = 768 * 512


def _size_limit(r: dict) -> int:
    """The byte limit of a size row, as `run` asked (rows from before it was
    recorded are Kodak images: their goal in bpp of 768 x 512 pixels)."""
    return r.get("limit") or int(r["goal"] * KODAK_PIXELS / 8)


def _reached(r: dict) -> str:
    """Where a steered row landed against its goal."""
    if r["kind"] == "bpp":
        return f"{100 * r['file_bytes'] / _size_limit(r):.1f} % of {_size_limit(r)} B"
    return f"{r['psnr']:.2f} dB ({r['psnr'] - r['goal']:+.2f})"


def _landed(r: dict) -> tuple[bool, bool]:
    """(within the goal's window, above a size limit)."""
    if r["kind"] == "bpp":
        share = r["file_bytes"] / _size_limit(r)
        return 0.97 <= share <= 1.0, share > 1.0
    return abs(r["psnr"] - r["goal"]) <= PSNR_TOLERANCE, False


def table(args: argparse.Namespace) -> None:
    """One row per steered file: where it landed and, given fixed-λ encodes
    (`fixed` rows, `--reference` points), its rate against their curve at its
    PSNR (`rate_at_psnr`: the fit BD-rate integrates, so each figure is the
    file's own BD-rate against the curve), and a fixed encode at its own
    quality beside it; then per image with 4 steered files or more their
    BD-rate against those points."""
    steered = [json.loads(line) for line in args.steered.open()]
    for path in args.replace:
        steered = _replaced(steered, [json.loads(line) for line in path.open()])
    fixed_rows = [json.loads(line) for line in args.fixed.open()] if args.fixed else []
    points = [json.loads(line) for path in args.reference for line in path.open()] + fixed_rows
    against = bool(points) and args.fit == "cubic"
    curves = {image: ([p["bpp"] for p in points if p["image"] == image],
                      [p["psnr"] for p in points if p["image"] == image])
              for image in {r["image"] for r in steered}}
    head = "| image | target | file | reached | quality | met | encode s |"
    rule = "|---|---|--:|--:|--:|---|--:|"
    if against:
        head += " bpp | PSNR | fixed λ, same quality | fixed-λ curve's bpp at that PSNR | rate |"
        rule += "--:|--:|--:|--:|--:|"
    print(head + "\n" + rule)
    rates = []
    for r in steered:
        goal = f"{r['goal']:g} bpp" if r["kind"] == "bpp" else f"{r['goal']:g} dB"
        image = r["image"] + (" (again)" if r.get("again") else "")
        line = (f"| {image} | {goal} | {r['file_bytes']} | {_reached(r)} | {r['quality']:.3f} "
                f"| {r['met']} | {r['encode_s']:.0f} |")
        if against:
            there = rate_at_psnr(*curves[r["image"]], r["psnr"])
            same = [f for f in fixed_rows if f["image"] == r["image"]
                    and f["goal"] == r["quality"]]
            twin = f"{same[0]['bpp']:.4f} bpp, {same[0]['psnr']:.2f} dB" if same else "–"
            if there is not None:
                rates.append(100 * (r["bpp"] / there - 1))
            line += (f" {r['bpp']:.4f} | {r['psnr']:.2f} | {twin} | "
                     + ("– | outside |" if there is None
                        else f"{there:.4f} | {rates[-1]:+.1f} % |"))
        print(line)
    sizes = [_landed(r) for r in steered if r["kind"] == "bpp"]
    psnrs = [_landed(r) for r in steered if r["kind"] == "psnr"]
    print(f"\nsize within 3 % below the target: {sum(w for w, _ in sizes)}/{len(sizes)}; "
          f"above it: {sum(o for _, o in sizes)}/{len(sizes)}; PSNR within "
          f"±{PSNR_TOLERANCE} dB: {sum(w for w, _ in psnrs)}/{len(psnrs)}")
    if points and args.fit == "linear":
        _against_chord(steered, points)
    if rates:
        print(f"rate against the fixed-λ curves: {np.mean(rates):+.1f} % on average over "
              f"{len(rates)} files inside their PSNR range (median {np.median(rates):+.1f} %)")
        # the fixed-λ twins are points of the fit too: how far it passes from them
        residuals = [100 * (f["bpp"] / there - 1) for f in fixed_rows if f["image"] in curves
                     and (there := rate_at_psnr(*curves[f["image"]], f["psnr"])) is not None]
        if residuals:
            print(f"the fit against the fixed-λ twins: {np.mean(np.abs(residuals)):.1f} % on "
                  f"average ({min(residuals):+.1f} to {max(residuals):+.1f} %, "
                  f"{len(residuals)} twins)")
    per_image = []
    for image in sorted(curves if against else ()):
        mine = [r for r in steered if r["image"] == image]
        result = bd_rate(*curves[image], [r["bpp"] for r in mine], [r["psnr"] for r in mine])
        if result.value is not None:
            per_image.append((image, len(mine), result.value))
    if per_image:
        print("\n| image | steered files | BD-rate against the fixed-λ points |")
        print("|---|--:|--:|")
        for image, n, value in per_image:
            print(f"| {image} | {n} | {value:+.2f} % |")
        print(f"| mean | | {np.mean([v for *_, v in per_image]):+.2f} % |")


def landing(args: argparse.Namespace) -> None:
    """Where each size row's bytes went against what its controller aimed at
    (rows that record their streams' bytes): the parameter stream against its
    estimate, the latents against their goal, the drift table's prediction at
    the last update against both."""
    a, b = args.parameters
    print("| image | target | size | parameters (estimate) | latents / goal "
          "| last prediction / goal | latents / last prediction |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for r in map(json.loads, args.steered.open()):
        if r["kind"] != "bpp" or "latent_bytes" not in r:
            continue
        progress, bpp, _, lmbda = r["steering"][-1]
        pixels = r.get("pixels", KODAK_PIXELS)
        limit = _size_limit(r)
        estimate = a + b * (lambda_to_quality(lmbda) - 1)
        other = r["file_bytes"] - r["latent_bytes"] - r["params_bytes"]
        goal = limit * args.aim - other - estimate
        predicted = COARSE.rate_at_end(bpp, progress) * pixels / 8
        print(f"| {r['image']} | {r['goal']:g} bpp | {100 * r['file_bytes'] / limit:.1f} % "
              f"| {r['params_bytes']:,} ({estimate:,.0f}) | {r['latent_bytes'] / goal:.3f} "
              f"| {predicted / goal:.3f} | {r['latent_bytes'] / predicted:.3f} |")


def _against_chord(steered: list[dict], reference: list[dict]) -> None:
    """`--fit linear`, the measure of the sections written before the fitted one:
    the curve's PSNR at the file's rate, linear in ln bpp between its points
    (nothing outside them), and the rate change that the PSNR difference amounts
    to at the chord's slope. The fixed-λ curves are convex there, so the chord
    lies above them and overstates the cost (README, \"The fixed-λ curve\")."""
    print("\n| image | target | bpp | PSNR | curve's PSNR there | ΔPSNR | as rate |")
    print("|---|---|--:|--:|--:|--:|--:|")
    rates = []
    for r in steered:
        curve = sorted((p["bpp"], p["psnr"]) for p in reference if p["image"] == r["image"])
        inside = [i for i in range(len(curve) - 1) if curve[i][0] <= r["bpp"] <= curve[i + 1][0]]
        goal = f"{r['goal']:g} bpp" if r["kind"] == "bpp" else f"{r['goal']:g} dB"
        if not inside:
            print(f"| {r['image']} | {goal} | {r['bpp']:.4f} | {r['psnr']:.2f} | outside | – | – |")
            continue
        (b0, p0), (b1, p1) = curve[inside[0]], curve[inside[0] + 1]
        slope = (p1 - p0) / np.log(b1 / b0)  # dB per unit of ln bpp
        there = p0 + slope * np.log(r["bpp"] / b0)
        delta = r["psnr"] - there
        rate = 100 * (np.exp(-delta / slope) - 1)
        rates.append(rate)
        print(f"| {r['image']} | {goal} | {r['bpp']:.4f} | {r['psnr']:.2f} | {there:.2f} | "
              f"{delta:+.2f} | {rate:+.1f} % |")
    if rates:
        print(f"\nmean rate change against the curve: {np.mean(rates):+.1f} % over "
              f"{len(rates)} files (median {np.median(rates):+.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("landing", help=landing.__doc__.split("\n")[0])
    p.add_argument("steered", type=Path)
    p.add_argument("--aim", type=float, default=AIM_SIZE, help="the rows' commit's AIM_SIZE")
    p.add_argument("--parameters", type=float, nargs=2, default=PARAMETER_BYTES,
                   help="the rows' commit's PARAMETER_BYTES")
    p = sub.add_parser("run")
    p.add_argument("images", nargs="+")
    p.add_argument("--bpp", type=float, nargs="*", default=[])
    p.add_argument("--psnr", type=float, nargs="*", default=[])
    p.add_argument("--steps", type=int, default=None, help="instead of the preset's")
    p.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("fixed")
    p.add_argument("--from", dest="source", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("table")
    p.add_argument("steered", type=Path)
    p.add_argument("fixed", type=Path, nargs="?")
    p.add_argument("--reference", type=Path, nargs="*", default=[],
                   help="fixed-λ points files of `segpic bench` (same images, same preset)")
    p.add_argument("--fit", choices=("cubic", "linear"), default="cubic",
                   help="the fixed-λ curve between its points: BD-rate's fit, or the "
                        "chord in ln bpp of the earlier sections")
    p.add_argument("--replace", type=Path, nargs="*", default=[],
                   help="rows made again (by a later commit): they replace the same targets'")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread per encode: two run side by side
    {"run": run, "fixed": fixed, "table": table, "landing": landing}[args.command](args)


if __name__ == "__main__":
    main()

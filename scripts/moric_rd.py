"""Encode images with MoRIC and report rate, PSNR and times (one JSON line each).

    python scripts/moric_rd.py /work/shared/data/kodak/kodim23.png --quality 4 \
        --steps 2400 --threads 2 --out results/moric_rd.jsonl

bpp is 8 x the size of the real .spic file (container frame included) over
the pixels; `--save-dir` keeps the files (IMAGE-qQ-STEPS-REGIONS.spic). PSNR is
RGB PSNR of what `decode` returns from the file's bytes, checked equal to the
encoder's reconstruction.

`--set key=value ...` overrides fields of the preset's recipe (as in
`moric_experiment.py`, e.g. `--set features=16`) for every encode of the run;
the rows record them under "set".
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from moric_experiment import parse_overrides  # scripts/, beside this one
from PIL import Image

from segpic_codec import container
from segpic_codec.moric import codec
from segpic_codec.moric.training.recipe import PRESETS

ANCHOR = Path("/work/shared/anchors/kodak/per_image/coolchic-v50.tsv")


def anchor_comparison(image: str, bpp: float, psnr_db: float) -> dict:
    """Against Cool-Chic 5.0's published per-image points (10k iterations, GPU):
    its PSNR at our rate and its rate at our PSNR, interpolated linearly in
    (log bpp, PSNR); empty outside its range or without the file."""
    if not ANCHOR.exists():
        return {}
    rows = [line.split("\t") for line in ANCHOR.read_text().splitlines()[1:]]
    points = sorted((float(r[2]), float(r[3])) for r in rows if r[0] == image)
    if len(points) < 2:
        return {}
    log_rate = np.log([p[0] for p in points])
    quality = np.array([p[1] for p in points])
    out = {}
    if log_rate[0] <= math.log(bpp) <= log_rate[-1]:
        out["coolchic50_psnr_at_our_bpp"] = round(float(np.interp(math.log(bpp), log_rate,
                                                                  quality)), 3)
    if quality[0] <= psnr_db <= quality[-1]:
        out["coolchic50_bpp_at_our_psnr"] = round(float(np.exp(np.interp(psnr_db, quality,
                                                                         log_rate))), 4)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--quality", type=float, nargs="+", default=[3.5])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--regions", default="auto", help="auto | none (see --regions)")
    parser.add_argument("--region-count", type=int, default=3)
    parser.add_argument("--save-dir", type=Path, default=None, help="keep the .spic files here")
    parser.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    parser.add_argument("--verbose", action="store_true", help="print progress every 100 steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.set:  # the encoder reads the preset's recipe from PRESETS
        PRESETS[args.preset] = replace(PRESETS[args.preset], **parse_overrides(args.set))

    def progress(info: dict) -> None:
        if args.verbose and info["step"] % 100 == 0:
            print(f"  step {info['step']}/{info['total']} bpp {info['bpp']:.4f} "
                  f"psnr {info['psnr']:.2f} elapsed {info['elapsed']:.0f}s", flush=True)

    done = set()
    if args.out and args.out.exists():  # resume: skip the points already measured
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["quality"], r["steps"], r.get("regions_asked", "none")))
    for path in args.images:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        h, w = pixels.shape[:2]
        for quality in args.quality:
            if (path.stem, quality, args.steps, args.regions) in done:
                continue
            enc = codec.encode(pixels, quality=quality, steps=args.steps,
                               time_limit=args.time_limit, preset=args.preset,
                               device=args.device, seed=args.seed, progress=progress,
                               regions=args.regions, region_count=args.region_count)
            data = container.pack("moric", w, h, enc.payload, enc.streams)
            if args.save_dir:
                args.save_dir.mkdir(parents=True, exist_ok=True)
                name = f"{path.stem}-q{quality:g}-{enc.steps}-{args.regions}.spic"
                (args.save_dir / name).write_bytes(data)
            start = time.perf_counter()
            frame = container.read_frame(data)
            decoded = codec.decode(frame.payload, container.split_streams(data, frame), w, h)
            decode_seconds = time.perf_counter() - start
            size = len(data)
            row = {
                "image": path.stem, "quality": quality, "preset": args.preset,
                "steps": enc.steps, "threads": args.threads, "bpp": size * 8 / (h * w),
                "file_bytes": size,
                "psnr": psnr(decoded, pixels), "encode_s": round(enc.seconds, 1),
                "decode_s": round(decode_seconds, 3),
                "params_bytes": len(enc.streams[0]),
                "regions_asked": args.regions, "regions": enc.regions,
                "contour_bytes": len(enc.streams[1]) if enc.regions > 1 else 0,
                "exact": bool(np.array_equal(decoded, enc.reconstruction)),
            }
            if args.set:
                row["set"] = args.set
            row.update(anchor_comparison(path.stem, row["bpp"], row["psnr"]))
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""MoRIC CPU speed on one image: seconds per optimisation step (three ways of
using two cores) and decode time; minimum and median over repeats (the
machine may be shared).

    python scripts/moric_speed.py /work/shared/data/kodak/kodim23.png --repeats 10

modes: two-core = MoRIC's default on a CPU with >= 2 threads (rate and
distortion on two threads, one intra-op thread each); one-thread; omp2 = plain
PyTorch intra-op parallelism with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segpic_codec.moric import codec
from segpic_codec.moric.contours.partition import auto_partition
from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.recipe import PRESETS


def step_times(pixels: np.ndarray, mode: str, features: int, repeats: int,
               regions: int = 1) -> list[float]:
    torch.set_num_threads(2 if mode == "omp2" else 1)
    h, w = pixels.shape[:2]
    target = torch.from_numpy(pixels).permute(2, 0, 1).reshape(3, -1).float() / 255.0
    recipe = replace(PRESETS["medium"], features=features)
    labels = auto_partition(pixels, regions) if regions > 1 else None
    opt = Optimisation(target, h, w, 1e-3, recipe, Budget(10**6, None, time.perf_counter()),
                       two_core=mode == "two-core", labels=labels)
    model, optimizer = opt.new_candidate(0)
    times = []
    try:
        for i in range(repeats + 3):
            start = time.perf_counter()
            opt.train_step(model, optimizer, "softround", 0.3, 0.2)
            if i >= 3:  # the first steps allocate
                times.append(time.perf_counter() - start)
    finally:
        if opt.cpu_loss is not None:
            opt.cpu_loss.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--features", type=int, default=PRESETS["medium"].features)
    parser.add_argument("--modes", nargs="+", default=["two-core", "one-thread", "omp2"])
    parser.add_argument("--regions", type=int, nargs="+", default=[1],
                        help="region counts to time (auto partitions)")
    parser.add_argument("--no-decode", action="store_true")
    args = parser.parse_args()
    pixels = np.ascontiguousarray(np.asarray(Image.open(args.image).convert("RGB")))
    h, w = pixels.shape[:2]
    for regions in args.regions:
        for mode in args.modes:
            t = step_times(pixels, mode, args.features, args.repeats, regions)
            print(json.dumps({"image": args.image.stem, "size": [w, h], "mode": mode,
                              "regions": regions, "features": args.features,
                              "s_per_step_min": round(min(t), 3),
                              "s_per_step_median": round(statistics.median(t), 3)}),
                  flush=True)
    if args.no_decode:
        return
    torch.set_num_threads(2)
    enc = codec.encode(pixels, quality=3.5, steps=50, preset="fast", regions="none")
    decode = []
    for _ in range(3):
        start = time.perf_counter()
        codec.decode(enc.payload, enc.streams, w, h)
        decode.append(time.perf_counter() - start)
    print(json.dumps({"image": args.image.stem, "decode_s_min": round(min(decode), 3),
                      "decode_s_median": round(statistics.median(decode), 3)}))


if __name__ == "__main__":
    main()

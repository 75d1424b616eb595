"""The parameter-quantisation search of a MoRIC encode, measured apart from
the training: the trained networks are saved just before the search, then
searched again with other settings (where each group's search starts, how
many tries without an improvement end a direction), and the distortion
evaluations are timed in-process.

    python scripts/moric_search_ab.py dump KODAK/kodim23.png --steps 180 --dir models
    python scripts/moric_search_ab.py compare models > search.jsonl
    python scripts/moric_search_ab.py time models/kodim23-q1-180.pt --rounds 5
    python scripts/moric_search_ab.py cost KODAK/kodim23.png --steps 60 --threads 2

`compare` prints one JSON line per model and setting: the RD loss (mse +
λ · (latent bits + parameter bits) / pixels) of the file it would write, the
exponents chosen and the evaluations made. One intra-op thread, as an encode.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segpic_codec.moric import codec
from segpic_codec.moric.bitstream import param_quant

SETTINGS = {  # name: (start exponents, replacing the current ones; tries without a gain)
    "8/10": ({("arm", "weight"): 8, ("arm", "bias"): 10, ("upsampling", "weight"): 8,
              ("gmn", "weight"): 8, ("gmn", "bias"): 10, ("lsn", "weight"): 8,
              ("lsn", "bias"): 10}, 2),
    "current": ({}, 2),
    "8/10 one miss": ({("arm", "weight"): 8, ("arm", "bias"): 10, ("upsampling", "weight"): 8,
                        ("gmn", "weight"): 8, ("gmn", "bias"): 10, ("lsn", "weight"): 8,
                        ("lsn", "bias"): 10}, 1),
    "current one miss": ({}, 1),
}


def dump(image: Path, qualities: list[float], steps: int, folder: Path) -> None:
    """Encode; save each trained model (before the search) as folder/NAME-qQ-STEPS.pt."""
    folder.mkdir(parents=True, exist_ok=True)
    search = codec._quantise_networks
    pixels = np.asarray(Image.open(image).convert("RGB"))
    for quality in qualities:
        name = folder / f"{image.stem}-q{quality:g}-{steps}.pt"

        def saving(model, target, lmbda, prior, workers=1, name=name):  # noqa: ANN001
            torch.save({"model": copy.deepcopy(model), "target": target.clone(),
                        "lmbda": lmbda, "prior": prior}, name)
            return search(model, target, lmbda, prior, workers)

        codec._quantise_networks = saving
        try:
            codec.encode(pixels, quality=quality, steps=steps)
        finally:
            codec._quantise_networks = search
        print(name, flush=True)


def compare(folder: Path, names: list[str]) -> None:
    starts = dict(param_quant.START_EXPONENT)
    misses = param_quant.SEARCH_MISSES
    counts: collections.Counter = collections.Counter()
    group_search = param_quant._search_group

    def counting(module, kind, params, names_, originals, evaluate, *rest):  # noqa: ANN001
        def counted(m: str) -> tuple[float, float]:
            counts["arm" if m == "arm" else "synthesis"] += 1
            return evaluate(m)
        return group_search(module, kind, params, names_, originals, counted, *rest)

    param_quant._search_group = counting
    try:
        for path in sorted(folder.glob("*.pt")):
            saved = torch.load(path, weights_only=False)
            for name in names:
                changed, param_quant.SEARCH_MISSES = SETTINGS[name]
                param_quant.START_EXPONENT.update({**starts, **changed})
                model = copy.deepcopy(saved["model"])
                counts.clear()
                began = time.perf_counter()
                coding = codec._quantise_networks(model, saved["target"], saved["lmbda"],
                                                  saved["prior"])
                seconds = time.perf_counter() - began
                print(json.dumps({"model": path.stem, "setting": name,
                                  "loss": _loss(model, saved, coding),
                                  "synthesis_evaluations": counts["synthesis"],
                                  "arm_evaluations": counts["arm"], "seconds": round(seconds, 2),
                                  "exponents": {f"{m}.{k}": c.exponent
                                                for (m, k), c in coding.items()}}), flush=True)
    finally:
        param_quant._search_group = group_search
        param_quant.START_EXPONENT.update(starts)
        param_quant.SEARCH_MISSES = misses


def _loss(model, saved: dict, coding: dict) -> float:  # noqa: ANN001
    with torch.no_grad():
        q = model.latents.integers().to(torch.float32)
        mse = float(model.squared_error(q, saved["target"])) / (3 * model.drawn_pixels)
        stream = param_quant.encode_parameters(model.sent_modules(), coding, saved["prior"])
        bits = float(model.rate_bits(q)) + 8 * len(stream)
    return mse + saved["lmbda"] * bits / model.drawn_pixels


def time_evaluations(path: Path, rounds: int) -> None:
    """Median milliseconds of one distortion evaluation each way, interleaved."""
    from segpic_codec.moric.networks.banded import gmn_cache  # (`cost` runs on old trees too)

    saved = torch.load(path, weights_only=False)
    model, target = saved["model"], saved["target"]
    with torch.no_grad():
        q = model.latents.integers().to(torch.float32)
        dense = model.dense_latents(q)
        kept = gmn_cache(model.height, model.width)
        model.squared_error_value(target, dense, 1, kept)
        ways = {"whole image, one thread": lambda: model.squared_error(q, target, dense),
                "bands, one thread": lambda: model.squared_error_value(target, dense, 1),
                "bands, two threads": lambda: model.squared_error_value(target, dense, 2),
                "GMN kept, two threads": lambda: model.squared_error_value(target, dense, 2,
                                                                           kept),
                "rate (ARM)": lambda: model.rate_bits(q)}
        times: dict[str, list[float]] = {k: [] for k in ways}
        for _ in range(rounds):
            for k, f in ways.items():
                began = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - began)
    for k, v in times.items():
        print(json.dumps({"model": path.stem, "way": k,
                          "median_ms": round(1e3 * statistics.median(v), 1)}))


def cost(image: Path, steps: int, quality: float, threads: int) -> None:
    """Seconds of the optimisation and of the search in one encode, and the
    search in steps of that encode (what `Budget` reserves for it)."""
    from segpic_codec.moric.training import encoder

    spent: dict[str, float] = {}
    search, run = codec._quantise_networks, encoder.Optimisation.run

    def timed(name: str, f):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            began = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                spent[name] = time.perf_counter() - began
        return wrapper

    codec._quantise_networks = timed("search", search)
    encoder.Optimisation.run = timed("optimisation", run)
    torch.set_num_threads(threads)
    try:
        began = time.perf_counter()
        codec.encode(np.asarray(Image.open(image).convert("RGB")), quality=quality, steps=steps)
        total = time.perf_counter() - began
    finally:
        codec._quantise_networks, encoder.Optimisation.run = search, run
    per_step = spent["optimisation"] / steps
    print(json.dumps({"image": image.stem, "steps": steps, "threads": threads,
                      "encode_s": round(total, 2),
                      "optimisation_s": round(spent["optimisation"], 2),
                      "search_s": round(spent["search"], 2),
                      "search_in_steps": round(spent["search"] / per_step, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("image", type=Path)
    d.add_argument("--quality", default="1,2.5,3.8,4.7")
    d.add_argument("--steps", type=int, default=180)
    d.add_argument("--dir", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("dir", type=Path)
    c.add_argument("--settings", default=",".join(SETTINGS))
    t = sub.add_parser("time")
    t.add_argument("model", type=Path)
    t.add_argument("--rounds", type=int, default=5)
    k = sub.add_parser("cost")
    k.add_argument("image", type=Path)
    k.add_argument("--steps", type=int, default=60)
    k.add_argument("--quality", type=float, default=3.0)
    k.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.command == "cost":
        return cost(args.image, args.steps, args.quality, args.threads)
    torch.set_num_threads(1)
    if args.command == "dump":
        dump(args.image, [float(q) for q in args.quality.split(",")], args.steps, args.dir)
    elif args.command == "compare":
        compare(args.dir, args.settings.split(","))
    else:
        time_evaluations(args.model, args.rounds)


if __name__ == "__main__":
    main()

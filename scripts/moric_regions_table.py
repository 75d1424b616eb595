"""MoRIC with regions (auto, N = 3) against one region, per image, from the JSON
lines of `scripts/moric_rd.py` (one file per variant, same images, qualities
and steps): BD-rate of N = 3 against N = 1 and of each against Cool-Chic 5.0's
published per-image curve, and the share of the contour stream in each file.

    python scripts/moric_regions_table.py bench/results/moric-regions-cpu/n3-1k.jsonl \
        bench/results/moric-regions-cpu/n1-1k.jsonl \
        --anchor ../shared/anchors/kodak/per_image/coolchic-v50.tsv

Any two variants compare the same way: `--labels "N=3 3k,N=3 1k"` names them
(e.g. the same partition at two step budgets). Only images measured at every
quality in both files are compared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from segpic_codec.bench.bd_rate import bd_rate


def load(path: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(r["image"], []).append(r)
    return {k: sorted(v, key=lambda r: r["quality"]) for k, v in rows.items()}


def anchor_curves(path: Path | None) -> dict[str, tuple[list[float], list[float]]]:
    if path is None or not path.exists():
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    for line in path.read_text().splitlines()[1:]:
        image, _, bpp, psnr = line.split("\t")
        out.setdefault(image, []).append((float(bpp), float(psnr)))
    return {k: ([p[0] for p in sorted(v)], [p[1] for p in sorted(v)]) for k, v in out.items()}


def _bd(anchor: tuple[list[float], list[float]], rows: list[dict]) -> float | None:
    return bd_rate(*anchor, [r["bpp"] for r in rows], [r["psnr"] for r in rows]).value


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("regions", type=Path, help="JSON lines of the N = 3 runs")
    parser.add_argument("single", type=Path, help="JSON lines of the N = 1 runs")
    parser.add_argument("--anchor", type=Path, default=None)
    parser.add_argument("--labels", default="N=3,N=1",
                        help="names of the two variants, comma separated")
    parser.add_argument("--pixels", type=int, default=768 * 512,
                        help="pixels per image (every Kodak image has 393,216)")
    args = parser.parse_args()
    first, second = args.labels.split(",")
    many, one = load(args.regions), load(args.single)
    anchors = anchor_curves(args.anchor)
    images = sorted(i for i in many if i in one
                    and [r["quality"] for r in many[i]] == [r["quality"] for r in one[i]])
    print(f"| image | steps | {first} vs {second} | {first} vs Cool-Chic 5.0 | "
          f"{second} vs Cool-Chic 5.0 | contour share of the file ({first}), by quality |")
    print("|---|--:|--:|--:|--:|---|")
    collected: dict[str, list[float]] = {"n3_vs_n1": [], "n3_vs_cc": [], "n1_vs_cc": []}
    for image in images:
        a, b = many[image], one[image]
        vs_one = _bd(([r["bpp"] for r in b], [r["psnr"] for r in b]), a)
        vs_cc3 = _bd(anchors[image], a) if image in anchors else None
        vs_cc1 = _bd(anchors[image], b) if image in anchors else None
        for key, v in (("n3_vs_n1", vs_one), ("n3_vs_cc", vs_cc3), ("n1_vs_cc", vs_cc1)):
            if v is not None:
                collected[key].append(v)
        shares = ", ".join(f"q{r['quality']:g}: "
                           f"{100 * 8 * r['contour_bytes'] / (r['bpp'] * args.pixels):.2f}%"
                           for r in a)
        steps = "/".join(sorted({str(r["steps"]) for r in a + b}, key=int))
        print(f"| {image} | {steps} | {_pct(vs_one)} | {_pct(vs_cc3)} | "
              f"{_pct(vs_cc1)} | {shares} |")
        print(f"|   points {first} |  | " + "; ".join(f"{r['bpp']:.3f} bpp {r['psnr']:.2f} dB"
                                               for r in a) + " | | | |")
        print(f"|   points {second} |  | " + "; ".join(f"{r['bpp']:.3f} bpp {r['psnr']:.2f} dB"
                                               for r in b) + " | | | |")
    if len(images) > 1:
        means = {k: (float(np.mean(v)) if v else None) for k, v in collected.items()}
        print(f"| mean of per-image BD-rates | | {_pct(means['n3_vs_n1'])} | "
              f"{_pct(means['n3_vs_cc'])} | {_pct(means['n1_vs_cc'])} | |")


if __name__ == "__main__":
    main()

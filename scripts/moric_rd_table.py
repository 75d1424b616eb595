"""One table and one plot from several `segpic bench` runs of MoRIC on the same
images (one run per step budget): steps-labelled MoRIC curves beside the
conventional codecs measured in those runs and the published curves (VTM, and
Cool-Chic per image averaged over the same images), with the BD-rates the
MoRIC issue sets targets for.

    python scripts/moric_rd_table.py bench/results/moric-kodak4/gpu-1k \
        bench/results/moric-kodak4/gpu-3k --anchors ../shared/anchors/kodak \
        --plot bench/results/moric-kodak4/rd.png

`--points FILE.jsonl ...` adds MoRIC curves from `scripts/moric_rd.py` lines
(CPU encodes of one image at a time): one curve per (steps, regions), each
point the mean bpp and mean PSNR over the images at one quality, as
`segpic bench` averages; a quality missing for any image is an error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segpic_codec.bench.anchors import PLOTTED_ANCHORS, load_anchors, per_image_anchors
from segpic_codec.bench.bd_rate import bd
from segpic_codec.bench.codecs import BenchCodec
from segpic_codec.bench.plot import plot_rd

OTHERS = ("avif", "heic", "jxl")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def curves_from_points(files: list[Path], images: list[str], label: str) -> dict[str, dict]:
    """bench-style results, {key: {name, steps, results: {bpp, psnr-rgb}}}, from
    moric_rd.py lines, averaged over `images` at each quality."""
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line]
    groups: dict[tuple[int, str], dict[float, dict[str, dict]]] = {}
    for r in rows:
        if r["image"] in images:
            group = groups.setdefault((r["steps"], r.get("regions_asked", "none")), {})
            group.setdefault(r["quality"], {})[r["image"]] = r
    out = {}
    for (steps, regions), by_quality in sorted(groups.items()):
        for quality, per_image in by_quality.items():
            missing = sorted(set(images) - set(per_image))
            if missing:
                raise SystemExit(f"--points: {steps} steps, regions {regions}, quality "
                                 f"{quality:g}: no point for {', '.join(missing)}")
        qualities = sorted(by_quality)
        regions_name = "one region" if regions == "none" else f"regions {regions}"
        out[f"moric-{steps}-{regions}-{label}"] = {
            "name": f"MoRIC ({steps // 1000}k steps, {regions_name}, {label})",
            "steps": steps,
            "results": {m: [sum(by_quality[q][i][key] for i in images) / len(images)
                            for q in qualities]
                        for m, key in (("bpp", "bpp"), ("psnr-rgb", "psnr"))},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--anchors", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--points", type=Path, nargs="*", default=[],
                        help="moric_rd.py JSON lines, added as MoRIC curves")
    parser.add_argument("--label", default="CPU", help="what sets the --points curves apart")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    images: list[str] | None = None
    for run in args.runs:
        for f in sorted(run.glob("*.json")):
            if f.stem in ("per_image", "summary"):
                continue
            d = json.loads(f.read_text())
            names = [Path(n).stem for n in d.get("image_names", [])]
            if images is None:
                images = names
            if names != images:
                raise SystemExit(f"{f}: other images ({names}) than {images}")
            if f.stem in results and any(results[f.stem]["results"][m] != d["results"][m]
                                         for m in ("bpp", "psnr-rgb")):
                raise SystemExit(f"{f}: other rates or PSNRs than the same codec in an "
                                 "earlier run")
            results.setdefault(f.stem, d)
    results.update(curves_from_points(args.points, images or [], args.label))
    anchors = load_anchors(args.anchors)
    anchors.update(per_image_anchors(args.anchors, images or []))
    moric = sorted((k for k in results if k.startswith("moric")),
                   key=lambda k: results[k].get("steps", 0))
    refs = [("VTM", anchors.get("vtm"))]
    refs += [(results[k]["name"], results[k]) for k in OTHERS if k in results]
    refs += [(PLOTTED_ANCHORS[s][0], anchors[s]) for s in ("coolchic-v50@images",
                                                          "coolchic-v42@images") if s in anchors]
    print(f"Images: {', '.join(images or [])}\n")
    print("| curve | steps | bpp range | " + " | ".join(f"vs {n}" for n, _ in refs) + " |")
    print("|---|--:|--:|" + "--:|" * len(refs))
    for key in moric + [k for k in OTHERS if k in results]:
        d = results[key]
        b = d["results"]["bpp"]
        cells = [_pct(bd(ref, d).value) if ref is not None and ref is not d else "-"
                 for _, ref in refs]
        print(f"| {d['name']} | {d.get('steps', '')} | {min(b):.3f}-{max(b):.3f} | "
              + " | ".join(cells) + " |")
    if args.plot:
        codecs = [BenchCodec(k, results[k]["name"], "", (), (), "", lambda *a: None,
                             label=results[k]["name"], family=k.split("-")[0])
                  for k in moric + [k for k in OTHERS if k in results]]
        shown = {k: v for k, v in anchors.items()
                 if k in ("vtm", "coolchic-v50@images", "paper-moric2025_mse")}
        plot_rd(args.plot, codecs, results, shown,
                f"Kodak {', '.join(images or [])}: MoRIC by step budget (solid: measured)")
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()

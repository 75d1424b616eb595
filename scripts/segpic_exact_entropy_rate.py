"""Rate cost of SegPIC's exact entropy path against the float64 path of earlier
files: both paths encode every Kodak image at the same qualities with the
shipped weights; one JSON line per (image, quality, path) with the file's bpp
and PSNR, then the BD-rate of the exact curve against the float one (all
images' points averaged per quality, as `segpic bench` does).

    python scripts/segpic_exact_entropy_rate.py --qualities 1,2,3.5,5,6 \
        --out bench/results/segpic-exact-entropy/points.jsonl

Points already in --out are kept (a stopped run goes on where it stopped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from segpic_codec.bench.bd_rate import bd_rate
from segpic_codec.quality_metrics import psnr_rgb
from segpic_codec.segpic import layout
from segpic_codec.segpic.codec import Codec, _pad, _to_pixels, _to_tensor
from segpic_codec.segpic.networks.quality import quality_to_index
from segpic_codec.segpic.options import DEFAULT_GRID
from segpic_codec.shared_data import configured_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qualities", default="1,2,3,4,5,6")
    parser.add_argument("--images", default="")  # comma list; default all of Kodak
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    shared = configured_dir() or Path(__file__).resolve().parents[2] / "shared"
    kodak = shared / "data" / "kodak"
    names = args.images.split(",") if args.images else sorted(p.stem for p in kodak.glob("*.png"))
    qualities = [float(q) for q in args.qualities.split(",")]
    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["quality"], r["exact_entropy"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    codec = Codec.load(device="cpu")
    for name in names:
        pixels = np.asarray(Image.open(kodak / f"{name}.png").convert("RGB"))
        h, w = pixels.shape[:2]
        x = _to_tensor(_pad(pixels), "cpu")
        for quality in qualities:
            for exact in (False, True):
                if (name, quality, exact) in done:
                    continue
                q = quality_to_index(quality, codec.num_qualities)
                streams, x_hat = codec.model.compress(x, q, DEFAULT_GRID, exact_entropy=exact)
                header = layout.Header(model=codec.model_name, weights_id=codec.weights_id,
                                       quality=quality, width=w, height=h, grid=DEFAULT_GRID,
                                       exact_entropy=exact)
                size = len(layout.pack_payload(header)) + sum(
                    len(s) for s in layout.stream_list(streams))
                row = {"image": name, "quality": quality, "exact_entropy": exact,
                       "bpp": 8 * size / (h * w),
                       "psnr": psnr_rgb(pixels, _to_pixels(x_hat, h, w))}
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    report(args.out)


def report(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    images = sorted({r["image"] for r in rows})
    curves = {}
    for exact in (False, True):
        per_q: dict[float, list] = {}
        for r in rows:
            if r["exact_entropy"] == exact:
                per_q.setdefault(r["quality"], []).append(r)
        full = {q: rs for q, rs in per_q.items() if len(rs) == len(images)}
        curves[exact] = ([np.mean([r["bpp"] for r in full[q]]) for q in sorted(full)],
                         [np.mean([r["psnr"] for r in full[q]]) for q in sorted(full)])
    result = bd_rate(*curves[False], *curves[True], max_bpp=None)
    print(f"{len(images)} images, {len(curves[True][0])} qualities: BD-rate of the exact "
          f"path against float64: {result.value:+.3f} %")


if __name__ == "__main__":
    main()

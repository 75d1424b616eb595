"""Kodak rate-distortion of one or more weights folders, with real .spic files.

    python scripts/eval_weights.py weights/small runs/ablation-grid [--images DIR] [--out F.json]

Prints bpp / PSNR per quality for each weights folder (grid partitions at
inference, as always) and writes them as JSON. Used for the masks-vs-grid
training ablation reported in the README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from segpic_codec.image_io import list_images
from segpic_codec.segpic.codec import Codec
from segpic_codec.segpic.training.evaluation import evaluate
from segpic_codec.shared_data import kodak_dir

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="+", type=Path)
    parser.add_argument("--images", type=Path, default=kodak_dir(required=False))
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = list_images(args.images)
    if args.limit:
        paths = paths[: args.limit]
    results = {}
    for weights in args.weights:
        codec = Codec.load(weights, device="cpu")
        records = evaluate(codec, paths, range(1, codec.num_qualities + 1))
        results[str(weights)] = {"weights_id": codec.weights_id, "records": records}
        for r in records:
            print(f"{weights} q{r['quality']:g}: {r['bpp']:.4f} bpp  {r['psnr']:.2f} dB "
                  f"({r['images']} images)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

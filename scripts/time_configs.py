"""Encode / decode time per image on this CPU for each model configuration.

    python scripts/time_configs.py [--image PATH] [--repeats 3] [--threads 2]

`small` uses the shipped weights; `segpic` and `tiny` use seeded random weights
(the network's cost does not depend on the weights' values). Times are the
median over repeats of the codec API calls (encode without reconstruction,
decode to pixels), after one warm-up call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from segpic_codec.image_io import load_image
from segpic_codec.segpic.codec import Codec
from segpic_codec.segpic.config import CONFIGS
from segpic_codec.segpic.networks.model import SegPIC
from segpic_codec.segpic.weights.folder import default_weights_dir
from segpic_codec.shared_data import kodak_image

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IMAGE = kodak_image("kodim23", required=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default="tiny,small,segpic")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = args.image or (DEFAULT_IMAGE if DEFAULT_IMAGE and DEFAULT_IMAGE.is_file()
                           else REPO / "examples" / "parrots.png")
    pixels = load_image(image).pixels
    h, w = pixels.shape[:2]
    print(f"image {image.name} {w}x{h}, {args.threads} threads, torch {torch.__version__}")
    for name in args.configs.split(","):
        if name == "small" and (default_weights_dir("small") / "manifest.json").is_file():
            codec = Codec.load(model="small", device="cpu")
        else:
            torch.manual_seed(0)
            codec = Codec.from_model(SegPIC(CONFIGS[name]).eval())
        data = codec.encode(pixels, quality=3.5, reconstruct=False).data
        codec.decode(data)
        enc, dec = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            data = codec.encode(pixels, quality=3.5, reconstruct=False).data
            enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            codec.decode(data)
            dec.append(time.perf_counter() - t)
        params = sum(p.numel() for p in codec.model.parameters()) / 1e6
        print(f"{name:7s} {params:6.1f} M params  encode {statistics.median(enc):6.2f} s  "
              f"decode {statistics.median(dec):6.2f} s", flush=True)


if __name__ == "__main__":
    main()

"""In-process SegPIC encode and decode times of one image (shipped weights, the
CPU, torch's default threads): load once, then min and median of --runs encodes
and decodes. For an A/B against an earlier commit, run it in a worktree of that
commit and in this one, alternating, on an idle machine:

    PYTHONPATH=<tree> python scripts/segpic_coding_times.py KODAK/kodim23.png --label old
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from segpic_codec.segpic.codec import Codec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--quality", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    start = time.perf_counter()
    codec = Codec.load(device="cpu")
    load = time.perf_counter() - start
    encode, decode = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        data = codec.encode(pixels, quality=args.quality, reconstruct=False).data
        encode.append(time.perf_counter() - start)
        start = time.perf_counter()
        codec.decode(data)
        decode.append(time.perf_counter() - start)
    print(f"{args.label} load {load:.2f} s, encode min {min(encode):.2f} median "
          f"{np.median(encode):.2f} s, decode min {min(decode):.2f} median "
          f"{np.median(decode):.2f} s, {len(data)} bytes")


if __name__ == "__main__":
    main()

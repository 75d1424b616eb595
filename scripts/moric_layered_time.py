"""Layered decoding: the time to decode one region of a MoRIC file against a
full decode (same file, same process; median and minimum of --repeats).

    python scripts/moric_layered_time.py /work/shared/data/kodak/kodim23.png

The file is made with auto regions (N = 3) and a few steps: decode time does
not depend on how long the encoder optimised. One intra-op thread, as the
decoder always runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from segpic_codec.moric import codec


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pixels = np.ascontiguousarray(np.asarray(Image.open(args.image).convert("RGB")))
    h, w = pixels.shape[:2]
    enc = codec.encode(pixels, quality=3.5, steps=args.steps, region_count=args.regions)
    full = timed(lambda: codec.decode(enc.payload, enc.streams, w, h), args.repeats)
    print(json.dumps({"image": args.image.stem, "regions": enc.regions, "decode": "full",
                      "s_median": round(statistics.median(full), 3),
                      "s_min": round(min(full), 3)}), flush=True)
    shares = np.bincount(enc.labels.ravel(), minlength=enc.regions) / enc.labels.size
    for r in range(enc.regions):
        t = timed(lambda r=r: codec.decode(enc.payload, enc.streams, w, h, {r}), args.repeats)
        print(json.dumps({"image": args.image.stem, "decode": f"region {r}",
                          "share": round(float(shares[r]), 3),
                          "s_median": round(statistics.median(t), 3),
                          "s_min": round(min(t), 3),
                          "vs_full": round(statistics.median(t) / statistics.median(full), 3)}),
              flush=True)


if __name__ == "__main__":
    main()

"""In-process SegPIC encode and decode times of one image (shipped weights, the
CPU, torch's default threads unless --threads): load once, then min and median
of --runs encodes and decodes. For an A/B against an earlier commit, run it in a
worktree of that commit and in this one, alternating (scripts/segpic_coding_times_ab.sh):

    PYTHONPATH=<tree> python scripts/segpic_coding_times.py KODAK/kodim23.png --label old

--jsonl appends one row with every time, the tree's commit and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--quality", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--label", default="")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--jsonl", type=Path, default=None, help="append the times here")
    args = parser.parse_args()
    import torch  # after argparse: --help stays light

    if args.threads:
        torch.set_num_threads(args.threads)
    from segpic_codec.segpic.codec import Codec

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
    if args.jsonl:
        tree = Path(__import__("segpic_codec").__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        row = {"label": args.label, "commit": commit, "image": Path(args.image).name,
               "quality": args.quality, "threads": torch.get_num_threads(),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "load_s": round(load, 4), "encode_s": [round(t, 4) for t in encode],
               "decode_s": [round(t, 4) for t in decode], "bytes": len(data),
               "loadavg_1min": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        with args.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

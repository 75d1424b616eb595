"""MoRIC across devices: a file encoded on CUDA must decode on the CPU (in a fresh
process that cannot see the GPU) to exactly the encoder's reconstruction; prints
the CUDA seconds per optimisation step.

    python scripts/moric_cuda_check.py IMAGE [--steps 300] [--quality 3.8] [--json F]

Exit code: 0 the CPU decode matched, 1 it did not, 2 no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from segpic_codec import codecs
from segpic_codec.image_io import load_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quality", type=float, default=3.8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    pixels = load_image(args.image).pixels
    encoder = codecs.load_encoder("moric", device="cuda", steps=args.steps)
    t0 = time.perf_counter()
    result = encoder.encode(pixels, quality=args.quality)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        spic, out = Path(tmp) / "a.spic", Path(tmp) / "a.npy"
        spic.write_bytes(result.data)
        code = ("import sys, time, numpy as np\nfrom segpic_codec import codecs\n"
                "data = open(sys.argv[1], 'rb').read()\nt = time.perf_counter()\n"
                "px = codecs.decode(data)\nprint(time.perf_counter() - t)\n"
                "np.save(sys.argv[2], px)\n")
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-c", code, str(spic), str(out)], env=env,
                              capture_output=True, text=True, check=True)
        decoded = np.load(out)
    same = bool(np.array_equal(decoded, result.reconstruction))
    report = {
        "image": args.image.name, "gpu": torch.cuda.get_device_name(), "steps": args.steps,
        "quality": args.quality, "bpp": result.bpp, "encode_s": seconds,
        "s_per_step_incl_setup": seconds / args.steps,
        "cpu_decode_s_1_thread": float(done.stdout.split()[-1]),
        "cpu_decode_equals_cuda_reconstruction": same,
        "max_abs_diff": int(np.abs(decoded.astype(int) - result.reconstruction).max()),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

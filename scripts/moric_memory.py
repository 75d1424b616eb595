"""Peak memory of MoRIC encode and decode on a large image (default 3840x2160).

    python scripts/moric_memory.py --width 3840 --height 2160 --steps 3

Each measurement runs in a fresh process (peak resident set size from
getrusage), on a Kodak image tiled and upscaled to the requested size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

KODAK = Path("/work/shared/data/kodak/kodim23.png")


def make_image(width: int, height: int) -> np.ndarray:
    image = Image.open(KODAK).convert("RGB").resize((width, height), Image.BICUBIC)
    return np.asarray(image)


def child(mode: str, workdir: Path, steps: int, threads: int) -> None:
    import torch

    from segpic_codec.moric import codec

    torch.set_num_threads(threads)
    start = time.perf_counter()
    if mode == "encode":
        pixels = np.load(workdir / "pixels.npy")
        enc = codec.encode(pixels, quality=3.5, steps=steps)
        np.savez(workdir / "coded.npz", payload=np.frombuffer(enc.payload, np.uint8),
                 **{f"s{i}": np.frombuffer(s, np.uint8) for i, s in enumerate(enc.streams)})
    else:
        data = np.load(workdir / "coded.npz")
        h, w = np.load(workdir / "pixels.npy", mmap_mode="r").shape[:2]
        streams = [data[f"s{i}"].tobytes() for i in range(len(data.files) - 1)]
        codec.decode(data["payload"].tobytes(), streams, w, h)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "peak_gib": round(peak_kib / 2**20, 3),
                      "seconds": round(time.perf_counter() - start, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["encode", "decode"])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir, args.steps, args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        np.save(workdir / "pixels.npy", make_image(args.width, args.height))
        for mode in ("encode", "decode"):
            subprocess.run([sys.executable, __file__, "--child", mode, "--workdir", str(workdir),
                            "--steps", str(args.steps), "--threads", str(args.threads)],
                           check=True)


if __name__ == "__main__":
    main()

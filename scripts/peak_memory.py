"""Peak memory (max RSS) and time of encoding and decoding a 3840x2160 photo on the CPU.

    python scripts/peak_memory.py [--width 3840 --height 2160] [--quality 3.5]

Each phase runs in its own process so its peak RSS is its own. The test image is
a Kodak photo upscaled to the size (or a smooth synthetic image without Kodak).
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

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak" / "kodim23.png"


def _phase(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from segpic_codec.image_io import save_png
    from segpic_codec.segpic.codec import Codec

    torch.set_num_threads(args.threads)
    codec = Codec.load(device="cpu")
    start = time.perf_counter()
    if args.phase == "encode":
        if KODAK.is_file():
            img = Image.open(KODAK).convert("RGB").resize((args.width, args.height),
                                                          Image.Resampling.BICUBIC)
            pixels = np.asarray(img)
        else:
            y, x = np.mgrid[0 : args.height, 0 : args.width]
            pixels = np.stack([(x * 255 // args.width), (y * 255 // args.height),
                               ((x + y) % 256)], axis=2).astype(np.uint8)
        result = codec.encode(pixels, quality=args.quality, reconstruct=False)
        Path(args.file).write_bytes(result.data)
        extra = {"bytes": len(result.data), "bpp": result.bpp}
    else:
        pixels = codec.decode(Path(args.file).read_bytes())
        save_png(pixels, args.file + ".png")
        extra = {}
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"phase": args.phase, "seconds": round(seconds, 1),
                      "peak_rss_mib": round(peak_mib), **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    parser.add_argument("--quality", type=float, default=3.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--phase", choices=["encode", "decode"], default=None)
    parser.add_argument("--file", default=None)
    args = parser.parse_args()
    if args.phase:
        _phase(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        spic = str(Path(tmp) / "big.spic")
        for phase in ("encode", "decode"):
            cmd = [sys.executable, __file__, "--phase", phase, "--file", spic,
                   "--width", str(args.width), "--height", str(args.height),
                   "--quality", str(args.quality), "--threads", str(args.threads)]
            subprocess.run(cmd, check=True, cwd=REPO)


if __name__ == "__main__":
    main()

"""Fit the λ controller's first guess (`rate_control.FIRST_RATE`, `FIRST_PSNR`)
and the JPEG anchor (`target_fit.jpeg_anchor`) to fixed-λ MoRIC files.

    python scripts/moric_first_guess_fit.py bench/results/moric-time/now-ec928e6/points-440.jsonl

Each row (`segpic bench points`) gives an image's latent bpp (the file less
its parameters, contours and frame) and PSNR at the λ of its quality. In
u = ln λ - ANCHOR_LN_LAMBDA, ln(latent bpp) and PSNR are fitted as a level per
image plus curves shared by all images (b u + c u²); each image's level is then
fitted against a JPEG of it at quality 75 (ln bpp on ln JPEG bpp, PSNR on
JPEG PSNR). Needs the Kodak images (SEGPIC_SHARED or ../shared).
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from segpic_codec.moric.training.rate_control import ANCHOR_LN_LAMBDA
from segpic_codec.moric.training.recipe import quality_to_lambda
from segpic_codec.quality_metrics import psnr_rgb
from segpic_codec.shared_data import kodak_image

FRAME_BYTES = 61  # a MoRIC file's frame and header, besides its streams


def jpeg_measure(image: np.ndarray) -> tuple[float, float]:
    """(bpp, PSNR) of a quality-75 JPEG of `image`, as `jpeg_anchor` makes it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=75)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return 8 * len(buffer.getvalue()) / (image.shape[0] * image.shape[1]), psnr_rgb(image, decoded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("points", type=Path)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.points.open()]
    images = sorted({r["image"] for r in rows})
    pictures = {im: np.asarray(Image.open(kodak_image(im)).convert("RGB")) for im in images}
    design, ln_bpp, psnr = [], [], []
    for r in rows:
        pixels = pictures[r["image"]].shape[0] * pictures[r["image"]].shape[1]
        latent_bytes = r["file_bytes"] - r["params_bytes"] - r["contour_bytes"] - FRAME_BYTES
        u = math.log(quality_to_lambda(r["quality"])) - ANCHOR_LN_LAMBDA
        level = [1.0 if r["image"] == im else 0.0 for im in images]
        design.append(level + [u, u * u])
        ln_bpp.append(math.log(8 * latent_bytes / pixels))
        psnr.append(r["psnr"])
    design_m = np.array(design)
    n = len(images)
    for name, values in (("rate", np.array(ln_bpp)), ("psnr", np.array(psnr))):
        coef, *_ = np.linalg.lstsq(design_m, values, rcond=None)
        worst = np.abs(design_m @ coef - values).max()
        print(f"FIRST_{name.upper()} = ({coef[n]:.4f}, {coef[n + 1]:.4f})  "
              f"(largest residual {worst:.3f})")
        jpeg = np.array([jpeg_measure(pictures[im]) for im in images])
        x = np.log(jpeg[:, 0]) if name == "rate" else jpeg[:, 1]
        slope, intercept = np.polyfit(x, coef[:n], 1)
        residual = coef[:n] - (slope * x + intercept)
        what = "ln(anchor bpp) = {:.3f} ln(JPEG bpp) {:+.3f}" if name == "rate" else \
            "anchor PSNR = {:.3f} JPEG PSNR {:+.3f}"
        print("  " + what.format(slope, intercept) +
              f"  (largest residual {np.abs(residual).max():.3f})")


if __name__ == "__main__":
    main()

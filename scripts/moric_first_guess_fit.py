"""Fit the λ controller's first guess (`rate_control.FIRST_RATE`, `FIRST_PSNR`)
and the JPEG anchor (`target_fit.jpeg_anchor`) to fixed-λ MoRIC files.

    python scripts/moric_first_guess_fit.py bench/results/moric-time/now-ec928e6/points-440.jsonl

Each row (`segpic bench points`) gives an image's latent bpp (the file less
its parameters, contours and frame) and PSNR at the λ of its quality. In
u = ln λ - ANCHOR_LN_LAMBDA, ln(latent bpp) is fitted as a level per image
plus a curve shared by all images (b u + c u²), PSNR as a level and a slope
per image plus a shared c u², the slopes then as a line in the level (b0 +
b1 (level - 30)); each image's level is fitted against a JPEG of it at quality
75 (ln bpp on ln JPEG bpp, PSNR on JPEG PSNR). The parameter stream's bytes
are fitted as a line in the quality. Needs the Kodak images (SEGPIC_SHARED or
../shared).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from segpic_codec.moric.target_fit import jpeg_measure
from segpic_codec.moric.training.rate_control import ANCHOR_LN_LAMBDA
from segpic_codec.moric.training.recipe import quality_to_lambda
from segpic_codec.shared_data import kodak_image

FRAME_BYTES = 61  # a MoRIC file's frame and header, besides its streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("points", type=Path)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.points.open()]
    images = sorted({r["image"] for r in rows})
    pictures = {im: np.asarray(Image.open(kodak_image(im)).convert("RGB")) for im in images}
    levels, ln_bpp, psnr, us = [], [], [], []
    for r in rows:
        pixels = pictures[r["image"]].shape[0] * pictures[r["image"]].shape[1]
        latent_bytes = r["file_bytes"] - r["params_bytes"] - r["contour_bytes"] - FRAME_BYTES
        us.append(math.log(quality_to_lambda(r["quality"])) - ANCHOR_LN_LAMBDA)
        levels.append([1.0 if r["image"] == im else 0.0 for im in images])
        ln_bpp.append(math.log(8 * latent_bytes / pixels))
        psnr.append(r["psnr"])
    level, u = np.array(levels), np.array(us)[:, None]
    jpeg = np.array([jpeg_measure(pictures[im]) for im in images])
    n = len(images)

    rate_design = np.hstack([level, u, u * u])
    coef, *_ = np.linalg.lstsq(rate_design, np.array(ln_bpp), rcond=None)
    worst = np.abs(rate_design @ coef - ln_bpp).max()
    print(f"FIRST_RATE = ({coef[n]:.4f}, {coef[n + 1]:.4f})  (largest residual {worst:.3f})")
    _anchor_fit("ln(anchor bpp) = {:.3f} ln(JPEG bpp) {:+.3f}", np.log(jpeg[:, 0]), coef[:n])

    psnr_design = np.hstack([level, level * u, u * u])
    coef, *_ = np.linalg.lstsq(psnr_design, np.array(psnr), rcond=None)
    psnr_levels, slopes, curve = coef[:n], coef[n:2 * n], coef[2 * n]
    b1, b0 = np.polyfit(psnr_levels - 30.0, slopes, 1)
    fitted = psnr_design[:, :n] @ psnr_levels + \
        (psnr_design[:, :n] @ (b0 + b1 * (psnr_levels - 30.0))) * u[:, 0] + curve * u[:, 0] ** 2
    print(f"FIRST_PSNR = ({b0:.3f}, {b1:.3f}, {curve:.4f})  "
          f"(largest residual {np.abs(fitted - psnr).max():.3f} dB)")
    _anchor_fit("anchor PSNR = {:.3f} JPEG PSNR {:+.3f}", jpeg[:, 1], psnr_levels)

    # the parameter stream's bytes, a line in the quality (`target_fit.PARAMETER_BYTES`)
    quality = np.array([r["quality"] for r in rows]) - 1.0
    parameters = np.array([r["params_bytes"] for r in rows])
    slope, intercept = np.polyfit(quality, parameters, 1)
    spread = np.abs(parameters - (intercept + slope * quality)).max()
    print(f"PARAMETER_BYTES = ({intercept:.0f}, {slope:.1f})  (largest residual {spread:.0f} B)")


def _anchor_fit(what: str, jpeg: np.ndarray, levels: np.ndarray) -> None:
    """The line from a JPEG measure to the images' fitted levels."""
    slope, intercept = np.polyfit(jpeg, levels, 1)
    residual = levels - (slope * jpeg + intercept)
    print("  " + what.format(slope, intercept) +
          f"  (largest residual {np.abs(residual).max():.3f})")


if __name__ == "__main__":
    main()

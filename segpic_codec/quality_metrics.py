"""PSNR, the one definition that the bench, the codecs' evaluations and the tests
use: 10 log10(peak^2 / MSE), capped at PSNR_CAP. Torch-free, so that any part of
segpic may import it; MS-SSIM, which needs torch, is the bench's (bench/metrics.py).

Identical images have no finite PSNR. They get PSNR_CAP: the bench averages PSNR
over images and fits BD-rate curves through it, where one infinity would make the
mean infinite and the fit fail, and JSON has no infinity (the bench writes null
for it, which would drop the point)."""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP = 100.0  # dB; an exact reconstruction, and anything closer than this


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error on a scale whose peak is `peak` (255 for
    8-bit samples, 1.0 for [0, 1] floats), capped at PSNR_CAP."""
    if mse <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak**2 / mse))


def psnr_rgb(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR in dB over all samples of two 8-bit images (peak 255), capped at
    PSNR_CAP. Any array-like works (a Pillow image too)."""
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"PSNR of images of different shapes: {ref.shape} and {out.shape}")
    return psnr_from_mse(float(np.mean((ref - out) ** 2)))

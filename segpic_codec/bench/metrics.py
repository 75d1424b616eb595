"""The distortion metrics, both on 8-bit RGB against the 8-bit source: PSNR, and
MS-SSIM from pytorch-msssim with the settings CompressAI uses."""

from __future__ import annotations

import math

import numpy as np

# PSNR of an exact reconstruction (infinite otherwise); keeps the means finite.
PSNR_CAP = 100.0


def psnr_rgb(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR in dB over all 8-bit RGB samples (peak 255), capped at PSNR_CAP."""
    mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def ms_ssim_rgb(ref: np.ndarray, out: np.ndarray) -> float:
    """MS-SSIM over RGB with pytorch-msssim (data_range=255, float32, the settings
    CompressAI uses). NaN for images whose short side is at most 160 pixels: the
    five-scale 11x11 window does not fit them."""
    import torch
    from pytorch_msssim import ms_ssim

    if min(ref.shape[:2]) <= 160:
        return float("nan")

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]

    with torch.no_grad():
        return float(ms_ssim(tensor(ref), tensor(out), data_range=255.0, size_average=True))

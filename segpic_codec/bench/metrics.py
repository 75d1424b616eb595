"""MS-SSIM on 8-bit RGB against the 8-bit source, from pytorch-msssim with the
settings CompressAI uses. (PSNR, which the codecs use too, is in quality_metrics.)"""

from __future__ import annotations

import numpy as np


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

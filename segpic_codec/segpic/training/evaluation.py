"""Rate-distortion evaluation with real bitstreams: bpp is the size of the .spic
bytes, PSNR is measured on the decoded 8-bit RGB pixels (mean of per-image PSNR,
as in CompressAI's results)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ...image_io import load_image
from ...quality_metrics import psnr_rgb
from ..codec import Codec


def evaluate(codec: Codec, paths: Iterable[Path], qualities: Iterable[float]) -> list[dict]:
    """One record per quality: {"quality", "bpp", "psnr", "images"}."""
    images = [load_image(p).pixels for p in paths]
    records = []
    for quality in qualities:
        bpps, psnrs = [], []
        for image in images:
            result = codec.encode(image, quality=quality)
            bpps.append(result.bpp)
            psnrs.append(psnr_rgb(image, result.reconstruction))
        records.append({"quality": float(quality), "bpp": float(np.mean(bpps)),
                        "psnr": float(np.mean(psnrs)), "images": len(images)})
    return records

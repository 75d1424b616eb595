"""Single-object coding: which latents an object needs.

With `--roi`, region 0 (outside the object) is not coded: its pixels are not
fitted, and latents that cannot reach an object pixel are neither optimised
nor transmitted (they are zero on both sides, so the ARM contexts of the kept
latents see the same values in the encoder and the decoder).

Reach of a latent of grid i (scale s = 2**i): each 2x upsampling step reads
inputs up to 2 positions away at its own resolution, so over i steps a grid-i
latent moves pixels at most 2 + 1 + 1/2 + ... < 4 latents (4 s pixels) away;
the GMN's two 3x3 layers add 2 pixels. A latent is kept when an object pixel
lies within that reach. Torch-free; both sides compute it from the decoded
partition.
"""

from __future__ import annotations

import numpy as np

from .canvas import Canvas

UPSAMPLING_REACH = 4  # latents, in the grid's own units
SYNTHESIS_HALO = 2  # pixels (two 3x3 layers)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square (Chebyshev) dilation by `radius`, separable running maximum."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)])
        cumulative = np.cumsum(padded, axis=axis, dtype=np.int64)
        cumulative = np.concatenate([np.zeros_like(np.take(cumulative, [0], axis=axis)),
                                     cumulative], axis=axis)
        n = out.shape[axis]
        window = np.take(cumulative, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis) \
            - np.take(cumulative, np.arange(0, n), axis=axis)
        out = window > 0
    return out


def _block_any(mask: np.ndarray, scale: int, rows: int, cols: int) -> np.ndarray:
    """(rows, cols): does each scale x scale block of `mask` hold a True?"""
    padded = np.zeros((rows * scale, cols * scale), dtype=bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    return padded.reshape(rows, scale, cols, scale).any(axis=(1, 3))


def kept_latents(object_mask: np.ndarray, canvas: Canvas) -> np.ndarray:
    """(canvas.numel,) bool: the latents an object (H, W bool) needs, in the flat
    canvas (margins False)."""
    if object_mask.shape != (canvas.height, canvas.width):
        raise ValueError(f"object mask {object_mask.shape} does not match the canvas")
    near = _dilate(object_mask.astype(bool), SYNTHESIS_HALO)
    keep = np.zeros(canvas.shape, dtype=bool)
    for i, ((rows, cols), (r0, c0)) in enumerate(zip(canvas.sizes, canvas.origins,
                                                     strict=True)):
        grid = _block_any(near, 2**i, rows, cols)
        keep[r0:r0 + rows, c0:c0 + cols] = _dilate(grid, UPSAMPLING_REACH if i else 0)
    return keep.reshape(-1)

"""The latent pyramid upsampled to full resolution, in numpy (the training's
version is `networks/upsampling.py`, which documents the filter).

Grid g reaches full resolution through the 2x filters of levels g-1 .. 0 (each
pass crops to the next grid's size); the grids never mix, so each dense
channel is computed alone, which bounds the memory of large images to one
channel's temporaries.

Integer arithmetic: values at 2^-16 (int64), taps t at 2^-e; each 1-D pass
sums four products exactly in int64 and rounds back with floor(x 2^-e + 1/2),
then clamps to the activations' range. Float arithmetic: float32 as PyTorch's
CPU kernel computes it (a product, then three fused multiply-adds, here each
computed in float64 and rounded once to float32).
"""

from __future__ import annotations

import numpy as np

from ..bitstream.canvas import Canvas
from .layers import ACT_LIMIT, MAX_WEIGHT_EXPONENT, ONE


def _shifted(x: np.ndarray, axis: int) -> list[np.ndarray]:
    """The five views x[i - 2 + k] (k = 0..4) with replicated borders."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (2, 2)
    padded = np.pad(x, pad, mode="edge")
    index = [slice(None)] * x.ndim
    views = []
    for k in range(5):
        index[axis] = slice(k, k + n)
        views.append(padded[tuple(index)])
    return views


def _interleave(even: np.ndarray, odd: np.ndarray, axis: int, size: int) -> np.ndarray:
    """even and odd outputs along `axis`, cropped to `size`."""
    shape = list(even.shape)
    shape[axis] = 2 * shape[axis]
    out = np.empty(shape, even.dtype)
    index = [slice(None)] * even.ndim
    index[axis] = slice(0, None, 2)
    out[tuple(index)] = even
    index[axis] = slice(1, None, 2)
    out[tuple(index)] = odd
    index[axis] = slice(0, size)
    return out[tuple(index)]


def _pass_integer(x: np.ndarray, taps: np.ndarray, exponent: int, axis: int, size: int
                  ) -> np.ndarray:
    a, b, c, d = (int(t) for t in taps)
    s = _shifted(x, axis)
    even = a * s[0] + c * s[1] + d * s[2] + b * s[3]
    odd = b * s[1] + d * s[2] + c * s[3] + a * s[4]
    out = _interleave(even, odd, axis, size)
    if exponent:
        out += 1 << (exponent - 1)
        out >>= exponent
    return np.clip(out, -int(ACT_LIMIT), int(ACT_LIMIT), out=out)


def _fma32(acc: np.ndarray, tap: np.float32, x: np.ndarray) -> np.ndarray:
    return (acc.astype(np.float64) + np.float64(tap) * x).astype(np.float32)


def _pass_float(x: np.ndarray, taps: np.ndarray, axis: int, size: int) -> np.ndarray:
    a, b, c, d = (np.float32(t) for t in taps)
    s = _shifted(x, axis)
    even = _fma32(_fma32(_fma32(s[0] * a, c, s[1]), d, s[2]), b, s[3])
    odd = _fma32(_fma32(_fma32(s[1] * b, d, s[2]), c, s[3]), a, s[4])
    return _interleave(even, odd, axis, size)


def dense_channel(grids: list[np.ndarray], g: int, taps: np.ndarray, exponent: int,
                  integer: bool) -> np.ndarray:
    """Grid g at full resolution: (H, W) int64 at 2^-16, or float32."""
    x = grids[g]
    x = (x.astype(np.int64) * ONE) if integer else x.astype(np.float32)
    for level in range(g - 1, -1, -1):
        rows, cols = grids[level].shape
        if integer:
            x = _pass_integer(x, taps[level], exponent, 1, cols)
            x = _pass_integer(x, taps[level], exponent, 0, rows)
        else:
            x = _pass_float(x, taps[level], 1, cols)
            x = _pass_float(x, taps[level], 0, rows)
    return x


def integer_taps(values: np.ndarray, exponent: int) -> tuple[np.ndarray, int]:
    """The taps at a step no finer than 2^-MAX_WEIGHT_EXPONENT (rounded half up)."""
    taps = np.asarray(values, np.int64)
    if exponent > MAX_WEIGHT_EXPONENT:
        shift = exponent - MAX_WEIGHT_EXPONENT
        taps = (taps + (1 << (shift - 1))) >> shift
        exponent = MAX_WEIGHT_EXPONENT
    return taps, exponent


def split_canvas(flat_canvas: np.ndarray, canvas: Canvas) -> list[np.ndarray]:
    """The flat canvas of integer latents -> each grid (rows, columns), finest first."""
    plane = flat_canvas.reshape(canvas.shape)
    return [plane[rows, cols] for rows, cols in canvas.grid_slices()]

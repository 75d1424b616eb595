"""Decoded latents -> pixels: upsampling and synthesis, band by band.

The coarse grids are upsampled to full resolution first; each band of rows
then reads the full-resolution grid's own rows directly (no seventh channel
to hold) beside the coarse channels.

Bands (and the coarse channels) are independent, and numpy releases the GIL
in their products and element-wise passes: threads share the cores, and the
result is the same in any order.
"""

from __future__ import annotations

import numpy as np

from ...cores import run_threaded
from ..bitstream.canvas import Canvas
from ..bitstream.parameters import ModuleIntegers
from ..file_format import NUM_GRIDS, Header
from .layers import FloatArithmetic, IntegerArithmetic
from .synthesis import Synthesis, bands
from .upsampling import dense_channel, integer_taps, split_canvas

# threads for the coarse channels and the bands: beyond a few, memory bandwidth bounds them
MAX_THREADS = 4
# a coarse channel's temporaries take ~50 bytes a pixel: threads only where they stay small
THREADED_UPSAMPLING_PIXELS = 1 << 21


class Reconstruction:
    """The pixels of one file's latents (`image`), drawn by `upsample(g)` for
    every coarse grid g >= 1, then `draw(band)` for every band of `bands`.

    `only`: draw just these regions (other pixels stay 0) and run the GMN only
    on the rows they span."""

    def __init__(self, header: Header, integers: dict[str, ModuleIntegers],
                 flat_canvas: np.ndarray, labels: np.ndarray, only: set[int] | None = None):
        self.height, self.width = height, width = labels.shape
        self.ar = ar = (IntegerArithmetic if header.integer_synthesis else FloatArithmetic)(
            header.activation)
        self.grids = split_canvas(flat_canvas, Canvas(height, width))
        taps, exponent = integers["upsampling"]["taps"]
        self.taps, self.exponent = (integer_taps(taps, exponent) if ar.integer
                                    else (ar.values((taps, exponent)), exponent))
        # the coarse grids' channels at full resolution (the finest is read per band)
        self.coarse = np.empty((NUM_GRIDS - 1, height, width),
                               np.int32 if ar.integer else np.float32)
        self.synthesis = Synthesis(integers["gmn"], integers["lsn"], header.regions, ar)
        self.labels, self.regions = labels, header.regions
        self.image = np.zeros((height, width, 3), np.uint8)
        self.drawn = (np.ones(header.regions, bool) if only is None
                      else np.isin(np.arange(header.regions), sorted(only)))
        self.whole = header.regions == 1 and only is None
        rows = np.flatnonzero(self.drawn[labels].any(axis=1))
        self.bands = bands(int(rows[0]), int(rows[-1]) + 1, height, width) if rows.size else []
        self.coords_x, self.coords_y = ar.coordinates(width), ar.coordinates(height)

    def run(self) -> np.ndarray:
        """Every coarse channel, then every band, on up to MAX_THREADS threads."""
        if self.bands:
            small = self.height * self.width <= THREADED_UPSAMPLING_PIXELS
            run_threaded(self.upsample, range(1, NUM_GRIDS), MAX_THREADS if small else 1)
            run_threaded(self.draw, self.bands, MAX_THREADS)
        return self.image

    def upsample(self, grid: int) -> None:
        # a hostile file's float path may overflow to inf and NaN (clamped to
        # pixels at the end, as PyTorch's did): no warning lines on the way
        # (numpy's error state is per thread)
        with np.errstate(over="ignore", invalid="ignore"):
            self.coarse[grid - 1] = dense_channel(self.grids, grid, self.taps, self.exponent,
                                                  self.ar.integer)

    def draw(self, band: tuple[int, int, int, int]) -> None:
        r0, r1, i0, i1 = band
        with np.errstate(over="ignore", invalid="ignore"):
            self._draw(r0, r1, i0, i1)

    def _draw(self, r0: int, r1: int, i0: int, i1: int) -> None:
        ar, width = self.ar, self.width
        z = np.empty((NUM_GRIDS, (i1 - i0) * width), ar.dtype)
        z[0] = dense_channel([self.grids[0][i0:i1]], 0, self.taps, self.exponent,
                             ar.integer).reshape(-1)
        z[1:] = self.coarse[:, i0:i1].reshape(NUM_GRIDS - 1, -1)
        coords = np.stack([np.tile(self.coords_x, r1 - r0),
                           np.repeat(self.coords_y[r0:r1], width)]).astype(ar.dtype)
        split = None
        if not self.whole:
            band_labels = self.labels[r0:r1].reshape(-1)
            split = [np.flatnonzero(band_labels == r) if self.drawn[r] else None
                     for r in range(self.regions)]
        values = self.synthesis.band(z, i1 - i0, width, (r0 - i0, i1 - r1), coords, split)
        self.image[r0:r1] = ar.pixels(values).reshape(3, r1 - r0, width).transpose(1, 2, 0)

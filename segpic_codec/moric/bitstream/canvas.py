"""Where the latent grids live: one zero-margined 2-D canvas for all of them.

All grids share one ARM whose causal context is a fixed set of (row, column)
offsets. Packing every grid into a single canvas, with zero margins at least as
wide as the context reaches, makes each context neighbour one constant shift of
the flattened canvas. Training then gathers the contexts of all grids with 16
slices (no unfold, no per-grid loop) and decoding gathers a whole wavefront of
every grid with one fancy index.

Layout (grid 0 is full resolution, grid i is ceil(H / 2**i) x ceil(W / 2**i)):

    rows 0..2       zero margin
    band 0          grid 0
    3 zero rows
    band 1          grids 1..6 side by side, 3 zero columns between them

Decoding order: a latent at (r, c) of a grid depends on latents with
c' + 3 r' < c + 3 r only (the context reaches at most 2 columns to the right
on the row above, see CONTEXT_OFFSETS), so wavefront t = c + 3 r can be decoded
in one step once waves < t are known. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..file_format import NUM_GRIDS

# MoRIC's 16 causal neighbours (row, column) within a 9x9 window: three rows
# above (reaching two columns to the right) and three pixels to the left.
CONTEXT_OFFSETS: tuple[tuple[int, int], ...] = (
    (-3, 0), (-3, 1),
    (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2),
    (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
    (0, -3), (0, -2), (0, -1),
)
TOP = 3  # context rows above
LEFT = 3  # context columns to the left
RIGHT = 2  # context columns to the right
GAP = max(LEFT, RIGHT)
WAVE_SLOPE = 3  # wave index t = c + WAVE_SLOPE * r; must exceed the right reach (2)


def grid_sizes(height: int, width: int, num_grids: int = NUM_GRIDS) -> list[tuple[int, int]]:
    """(rows, columns) of each latent grid, finest first."""
    return [(-(-height // 2**i), -(-width // 2**i)) for i in range(num_grids)]


@dataclass(frozen=True)
class Canvas:
    """Positions of the latent grids of a height x width image in the shared canvas."""

    height: int
    width: int
    num_grids: int = NUM_GRIDS

    @cached_property
    def sizes(self) -> list[tuple[int, int]]:
        return grid_sizes(self.height, self.width, self.num_grids)

    @cached_property
    def origins(self) -> list[tuple[int, int]]:
        """(row, column) of each grid's top-left latent in the canvas."""
        origins = [(TOP, LEFT)]
        band1_row = TOP + self.sizes[0][0] + GAP
        column = LEFT
        for _, cols in self.sizes[1:]:
            origins.append((band1_row, column))
            column += cols + GAP
        return origins

    @cached_property
    def shape(self) -> tuple[int, int]:
        band1_width = sum(c for _, c in self.sizes[1:]) + GAP * (self.num_grids - 2)
        cols = LEFT + max(self.sizes[0][1], band1_width) + RIGHT
        rows = TOP + self.sizes[0][0] + GAP + max(r for r, _ in self.sizes[1:])
        return rows, cols

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    @cached_property
    def offsets(self) -> np.ndarray:
        """Flat-index shift of each context neighbour, shape (16,), int64."""
        cols = self.shape[1]
        return np.array([dr * cols + dc for dr, dc in CONTEXT_OFFSETS], dtype=np.int64)

    @cached_property
    def query_range(self) -> tuple[int, int]:
        """[start, stop) of flat positions whose contexts stay inside the canvas;
        it covers every latent of every grid."""
        cols = self.shape[1]
        return TOP * cols + LEFT, self.numel - RIGHT

    @cached_property
    def latent_index(self) -> np.ndarray:
        """Flat canvas index of every latent, grid after grid, row-major (int64)."""
        cols = self.shape[1]
        parts = []
        for (rows, width), (r0, c0) in zip(self.sizes, self.origins, strict=True):
            r = np.arange(rows, dtype=np.int64)[:, None] + r0
            c = np.arange(width, dtype=np.int64)[None, :] + c0
            parts.append((r * cols + c).reshape(-1))
        return np.concatenate(parts)

    @cached_property
    def grid_of_latent(self) -> np.ndarray:
        """Grid number of each entry of `latent_index` (int64)."""
        counts = [r * c for r, c in self.sizes]
        return np.repeat(np.arange(self.num_grids, dtype=np.int64), counts)

    @property
    def num_latents(self) -> int:
        return int(sum(r * c for r, c in self.sizes))

    def grid_slices(self) -> list[tuple[slice, slice]]:
        """(rows, columns) slices of each grid in the 2-D canvas."""
        return [(slice(r0, r0 + r), slice(c0, c0 + c))
                for (r, c), (r0, c0) in zip(self.sizes, self.origins, strict=True)]

    def wave_order(self, keep: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The decoding schedule.

        Returns (positions, wave_starts, grid_of_position): `positions` are flat
        canvas indices sorted by wave, then grid, then row; wave w covers
        positions[wave_starts[w]:wave_starts[w + 1]]. Within one grid the
        positions come in the order its symbols are written to its stream.
        keep: (numel,) bool, the latents that are coded (all when None).
        """
        cols = self.shape[1]
        # int32 work arrays where they fit: on a 4K image these are 11 M entries each
        small = np.int32 if self.numel < 2**31 else np.int64
        flat = np.empty(self.num_latents, np.int64)
        wave = np.empty(self.num_latents, small)
        start = 0
        for (rows, width), (r0, c0) in zip(self.sizes, self.origins, strict=True):
            r = np.arange(rows, dtype=small)[:, None]
            c = np.arange(width, dtype=small)[None, :]
            end = start + rows * width
            flat[start:end].reshape(rows, width)[:] = (r + r0).astype(np.int64) * cols + c + c0
            wave[start:end].reshape(rows, width)[:] = c + WAVE_SLOPE * r
            start = end
        grid = self.grid_of_latent
        # within one grid and one wave, the canvas index grows with the row
        # (cols > WAVE_SLOPE), so it orders the positions as the row does
        order = np.lexsort((flat, grid, wave))
        if keep is not None:
            order = order[keep[flat[order]]]
        wave_sorted = wave[order]
        num_waves = int(wave_sorted[-1]) + 1 if wave_sorted.size else 0
        wave_starts = np.searchsorted(wave_sorted, np.arange(num_waves + 1))
        del wave_sorted
        return flat[order], wave_starts, grid[order]

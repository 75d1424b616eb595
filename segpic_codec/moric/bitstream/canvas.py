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
        plan = self.wave_plan(keep)
        return plan.positions, plan.wave_starts, np.repeat(plan.segment_grids,
                                                            np.diff(plan.segment_starts))

    def wave_plan(self, keep: np.ndarray | None = None) -> WavePlan:
        """`wave_order` as segments: the runs of one grid within one wave.

        Built without sorting: in grid g, wave t holds the rows r with
        0 <= t - 3 r < columns, at canvas positions r (cols - 3) + t + base_g,
        so each segment is an arithmetic run with the canvas' one stride."""
        cols = self.shape[1]
        stride = cols - WAVE_SLOPE
        num_waves = max(c - 1 + WAVE_SLOPE * (r - 1) for r, c in self.sizes) + 1
        t = np.arange(num_waves, dtype=np.int64)[:, None]
        rows = np.array([r for r, _ in self.sizes], np.int64)[None, :]
        widths = np.array([c for _, c in self.sizes], np.int64)[None, :]
        base = np.array([r0 * cols + c0 for r0, c0 in self.origins], np.int64)[None, :]
        first = np.maximum(-((widths - 1 - t) // WAVE_SLOPE), 0)  # ceil((t - w + 1) / 3)
        last = np.minimum(t // WAVE_SLOPE, rows - 1)
        # (wave, grid) in row-major order: wave, then grid
        length = np.maximum(last - first + 1, 0).reshape(-1)
        start_position = (first * stride + t + base).reshape(-1)
        grid = np.broadcast_to(np.arange(self.num_grids), first.shape).reshape(-1)
        present = np.flatnonzero(length)
        length, start_position, grid = length[present], start_position[present], grid[present]
        wave = present // self.num_grids
        out_start = np.concatenate([[0], np.cumsum(length)])
        positions = (np.repeat(start_position - out_start[:-1] * stride, length)
                     + np.arange(out_start[-1], dtype=np.int64) * stride)
        if keep is not None:
            kept = keep[positions]
            positions = positions[kept]
            length = np.add.reduceat(kept.astype(np.int64), out_start[:-1])
            nonempty = length > 0
            length, grid, wave = length[nonempty], grid[nonempty], wave[nonempty]
            out_start = np.concatenate([[0], np.cumsum(length)])
        wave_lengths = np.bincount(wave, weights=length, minlength=num_waves)
        wave_starts = np.concatenate([[0], np.cumsum(wave_lengths.astype(np.int64))])
        if keep is not None:  # as the sort would: no waves after the last coded latent
            wave_starts = wave_starts[:int(wave[-1]) + 2] if wave.size else wave_starts[:1]
        return WavePlan(positions, wave_starts, out_start, grid)


@dataclass(frozen=True)
class WavePlan:
    """The decoding schedule of `Canvas.wave_plan`: positions in decoding order,
    the first of each wave (and the end), the first of each segment (and the
    end), and each segment's grid."""

    positions: np.ndarray
    wave_starts: np.ndarray
    segment_starts: np.ndarray
    segment_grids: np.ndarray

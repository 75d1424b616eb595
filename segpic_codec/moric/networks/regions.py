"""Which pixels each region's Local Synthesis Network draws.

The synthesis computes the shared GMN over every pixel, then each region's
LSN on that region's pixels only: its coordinates and GMN projections are
gathered with one index per region and the outputs scattered back. A
`RegionSplit` holds those indices for one block of pixels (the whole image,
or one band of rows); `None` regions in a split are left out (layered
decoding draws only the regions asked for).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class RegionSplit:
    """Flat pixel indices of each region within a block of N pixels."""

    def __init__(self, indices: list[Tensor | None], size: int):
        self.indices = indices  # per region: (n_r,) int64, or None if not drawn
        self.size = size

    @classmethod
    def from_labels(cls, labels: np.ndarray | Tensor, regions: int,
                    only: set[int] | None = None) -> RegionSplit:
        """labels: (N,) or (H, W) region numbers 0..regions-1; `only`: the
        regions to draw (all when None)."""
        flat = torch.as_tensor(np.asarray(labels).reshape(-1), dtype=torch.int64)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=regions).tolist()
        indices: list[Tensor | None] = []
        start = 0
        for r, n in enumerate(counts):
            drawn = only is None or r in only
            indices.append(order[start:start + n] if drawn and n else None)
            start += n
        return cls(indices, int(flat.numel()))

    def to(self, device: torch.device | str) -> RegionSplit:
        return RegionSplit([None if i is None else i.to(device) for i in self.indices],
                           self.size)

    @property
    def whole(self) -> bool:
        """One region drawn over every pixel: no gathering needed."""
        return len(self.indices) == 1 and self.indices[0] is not None \
            and self.indices[0].numel() == self.size


class RegionMap:
    """An image's region labels (H, W) and the regions to draw; hands out the
    split of any band of rows (the whole image's is kept)."""

    def __init__(self, labels: np.ndarray, regions: int, only: set[int] | None = None,
                 device: torch.device | str = "cpu"):
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.regions = regions
        self.only = only
        self.device = device
        self._splits: dict[tuple[int, int], RegionSplit] = {}  # by band of rows

    @classmethod
    def single(cls, height: int, width: int) -> RegionMap:
        return cls(np.zeros((height, width), dtype=np.int64), 1)

    @property
    def trivial(self) -> bool:
        """One region drawn everywhere: the synthesis needs no split."""
        return self.regions == 1 and self.only in (None, {0})

    def split(self, r0: int = 0, r1: int | None = None) -> RegionSplit | None:
        """The split of rows [r0, r1) (None when trivial)."""
        if self.trivial:
            return None
        r1 = self.labels.shape[0] if r1 is None else r1
        split = self._splits.get((r0, r1))
        if split is None:  # the training asks for the same bands at every step
            split = RegionSplit.from_labels(self.labels[r0:r1], self.regions,
                                            self.only).to(self.device)
            self._splits[(r0, r1)] = split
        return split

    def to(self, device: torch.device | str) -> RegionMap:
        return RegionMap(self.labels, self.regions, self.only, device)

    def drawing(self, only: set[int] | None) -> RegionMap:
        """The same labels, drawing only the regions in `only`."""
        return RegionMap(self.labels, self.regions, only, self.device)

    def row_range(self) -> tuple[int, int]:
        """[first, end) rows holding a pixel of a drawn region."""
        if self.only is None:
            return 0, self.labels.shape[0]
        rows = np.flatnonzero(np.isin(self.labels, sorted(self.only)).any(axis=1))
        return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)

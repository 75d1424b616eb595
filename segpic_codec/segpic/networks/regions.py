"""Region partitions: class-agnostic masks in training, an n x n grid at inference.

A partition is an integer label map over a feature grid. Regions of all images in
a batch share one compact index space [0, R), so masked average pooling (MAP,
Eq. 5) and the expansion of prototypes back onto pixels are a single
`index_add_` / gather over the whole batch, whatever the number of regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Training partitions give every image a fixed number of region slots, so that no
# step has to wait for the GPU to count regions (a host sync per step costs more
# than the whole prototype coder). Slots no pixel maps to are flagged in `present`
# and contribute no rate.
MASK_SLOTS = 256


@dataclass
class Partition:
    labels: torch.Tensor  # (B, h, w) int64, values in [0, num_regions)
    num_regions: int
    present: torch.Tensor | None = None  # (num_regions,) bool; None: every region is used

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[1]), int(self.labels.shape[2])


def _compact(global_labels: torch.Tensor) -> Partition:
    ids, inverse = torch.unique(global_labels, return_inverse=True)
    return Partition(labels=inverse.view_as(global_labels), num_regions=int(ids.numel()))


def grid_labels(h: int, w: int, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(h, w) label map of an n x n grid: cell (i, j) of the grid is label i*n + j.
    Cells are as equal as integer sizes allow; with h < n some labels are unused."""
    rows = torch.arange(h, device=device) * n // h
    cols = torch.arange(w, device=device) * n // w
    return rows[:, None] * n + cols[None, :]


def grid_partition(batch: int, h: int, w: int, n: int, device: torch.device | str = "cpu",
                   compact: bool = True) -> Partition:
    """The n x n grid of every image. `compact` numbers only the cells that exist
    at this size (what the bitstream codes); otherwise every image has n*n slots."""
    labels = grid_labels(h, w, n, device)
    offsets = torch.arange(batch, device=device).view(-1, 1, 1) * (n * n)
    labels = labels.unsqueeze(0) + offsets
    if compact:
        return _compact(labels)
    return _slotted(labels, batch * n * n)


def _slotted(labels: torch.Tensor, num_regions: int) -> Partition:
    hits = torch.zeros(num_regions, device=labels.device).index_add_(
        0, labels.reshape(-1), torch.ones(labels.numel(), device=labels.device))
    return Partition(labels=labels, num_regions=num_regions, present=hits > 0)


def mask_partition(masks: torch.Tensor, h: int, w: int) -> Partition:
    """Partition of a (h, w) feature grid from full-resolution label maps (B, H, W).

    Masks are subsampled by nearest neighbour (as the feature grid is a strided
    version of the image); a region that vanishes at this resolution is not
    `present`. Labels must lie in [0, MASK_SLOTS).
    """
    b, H, W = masks.shape
    if H % h or W % w:
        raise ValueError(f"mask size {H}x{W} is not a multiple of feature size {h}x{w}")
    sub = masks[:, :: H // h, :: W // w].long().clamp(0, MASK_SLOTS - 1)
    offsets = torch.arange(b, device=masks.device).view(-1, 1, 1) * MASK_SLOTS
    return _slotted(sub + offsets, b * MASK_SLOTS)


def masked_average_pool(features: torch.Tensor, partition: Partition) -> torch.Tensor:
    """MAP (Eq. 5): the mean feature of every region -> (R, C) prototypes."""
    b, c, h, w = features.shape
    if (h, w) != partition.shape:
        raise ValueError("feature and partition sizes differ")
    flat = features.float().permute(0, 2, 3, 1).reshape(-1, c)
    index = partition.labels.reshape(-1)
    sums = flat.new_zeros(partition.num_regions, c).index_add_(0, index, flat)
    counts = flat.new_zeros(partition.num_regions).index_add_(
        0, index, flat.new_ones(index.numel()))
    return sums / counts.clamp_min(1).unsqueeze(1)


def expand_prototypes(prototypes: torch.Tensor, partition: Partition) -> torch.Tensor:
    """Fill every pixel with the prototype of its region -> (B, C, h, w)."""
    return prototypes[partition.labels].permute(0, 3, 1, 2)

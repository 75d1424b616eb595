"""Coarse-to-fine: optimise the image at half size first, then start the
full-size optimisation from what that learned.

A half-size step costs about a quarter of a full one (`HALF_STEP_COST`), and
early on most of what the optimisation learns is coarse: the colours, the
shapes, the networks' fit to this image. At half size, latent grid g has the
size of the full image's grid g + 1, and the upsampling level that fills grid
g does the job of the full image's level g + 1. So the full-size run starts
with

- grids 1..6 holding the half run's grids 0..5, grid 0 at zero (the half
  run's coarsest grid has no full-size counterpart and is dropped);
- the half run's upsampling levels and GMN input columns moved down one grid;
  the new finest level interpolates (bicubic, a gain of 1), so grid 1 reaches
  the synthesis as the half run's grid 0 did (the prior's finest level has a
  gain of about 0.6 per dimension, which would scale every coarser grid), and
  grid 0's GMN column is the prior's;
- every other network (ARM, the GMN's other layers, each region's LSN) as the
  half run left it.

Measured in `bench/results/moric-time/coarse-to-fine/`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..bitstream.canvas import Canvas
from ..networks.latents import split_grids
from ..networks.model import MoricModel
from ..networks.upsampling import BICUBIC_TAPS
from .prior import network_state

# a half-size step's cost in full-size steps (0.23 measured on kodim23, one
# thread: 160 half steps took 36.8 s where a full step took about 0.8 s)
HALF_STEP_COST = 0.25
# both sides at least this (the half image keeps all seven grids)
MIN_SIDE = 128


@dataclass(frozen=True)
class CoarsePlan:
    """How a budget splits between the half-size run and the full-size one."""

    half_steps: int | None  # the half run's step budget (None: a time limit)
    half_time: float | None  # its seconds (None: a step budget)
    full_steps: int | None  # the full run's step budget (None: a time limit only)
    given_steps: int = 0  # the full-size steps the half run replaces (a step budget)

    def cost(self, half_steps_made: int) -> int:
        """The half run's steps in full-size steps, as a header counts them: the
        steps given (a finished budget reads in full), or those made at their cost."""
        return self.given_steps or round(half_steps_made * HALF_STEP_COST)


def plan_coarse(steps: int | None, time_limit: float | None, share: float, height: int,
                width: int) -> CoarsePlan | None:
    """The split of a budget of `steps` full-size steps (or `time_limit`
    seconds) with `share` of it spent at half size; None where that makes no
    coarse phase: share 0, a small image, a step budget too small to split.
    A step budget is split in steps (a half step costs `HALF_STEP_COST`); a
    time limit alone gives the half run `share` of the time."""
    if share <= 0 or min(height, width) < MIN_SIDE or not (steps or time_limit):
        return None
    if not steps:
        return CoarsePlan(None, share * time_limit, None)
    given = round(share * steps)
    if given < 1 or given >= steps:
        return None
    return CoarsePlan(round(given / HALF_STEP_COST),
                      share * time_limit if time_limit else None, steps - given, given)


def size_name(scale: int) -> str:
    """How the progress names a run at 1/scale of the image's side."""
    return {2: "half size", 4: "quarter size"}.get(scale, f"1/{scale} size")


def half_size(target: Tensor, height: int, width: int, labels: np.ndarray | None
              ) -> tuple[Tensor, int, int, np.ndarray | None] | None:
    """The 2x2 box average of `target` (3, H*W) and the labels sampled at every
    other pixel; None where a region would vanish at half size."""
    h, w = height // 2, width // 2
    image = target.reshape(3, height, width)[:, :2 * h, :2 * w]
    small = image.reshape(3, h, 2, w, 2).mean(dim=(2, 4)).reshape(3, -1)
    if labels is None:
        return small, h, w, None
    half_labels = np.ascontiguousarray(labels[:2 * h:2, :2 * w:2])
    if np.unique(half_labels).size != int(labels.max()) + 1:
        return None
    return small, h, w, half_labels


def moved_networks(half: MoricModel, prior: dict[str, np.ndarray] | dict[str, Tensor]
                   ) -> dict[str, Tensor]:
    """The half run's networks as the full-size start, in the prior's layout."""
    state = network_state(half)
    taps, w1 = state["upsampling.taps"], state["gmn.w1"]
    taps[1:] = taps[:-1].clone()
    taps[0] = torch.tensor(BICUBIC_TAPS)
    w1[:, 1:] = w1[:, :-1].clone()
    w1[:, 0] = torch.as_tensor(prior["gmn.w1"][:, 0])
    return state


def moved_latents(half: MoricModel, height: int, width: int) -> Tensor:
    """The full canvas (in quantisation steps) with grids 1..6 from the half
    run's grids 0..5.

    The half image is floor(H / 2) x floor(W / 2), so where a side of the full
    image is odd a half grid can be one row or column short of its full-size
    counterpart (483 rows: 241 at half size, ceil(483 / 2) = 242 in grid 1):
    the missing edge repeats the half grid's last row or column."""
    half_grids = split_grids(half.latents.values.detach() * half.latents.gain,
                             half.latents.canvas)
    canvas = Canvas(height, width)
    full = torch.zeros(canvas.shape)
    for g, grid in enumerate(split_grids(full, canvas)[1:], start=1):
        source = half_grids[g - 1]
        rows, cols = min(grid.shape[0], source.shape[0]), min(grid.shape[1], source.shape[1])
        grid[:rows, :cols] = source[:rows, :cols]
        grid[rows:, :cols] = grid[rows - 1:rows, :cols]
        grid[:, cols:] = grid[:, cols - 1:cols]
    return full


@torch.no_grad()
def copy_local_networks(half: MoricModel, model: MoricModel) -> None:
    """Each region's LSN as the half run left it (the prior layout holds one)."""
    for source, lsn in zip(half.synthesis.lsns, model.synthesis.lsns, strict=True):
        lsn.load_state_dict(source.state_dict())

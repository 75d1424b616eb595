"""ChARM on the exact entropy path (`ExactCharm`): ChannelARCodec's bitstream
steps on activations, each transform's first convolution split by its inputs.

Transform (kind, i) of slice i (the mean, scale or LRP transform) starts with a
3x3 convolution of cat([h, d_0 .. d_k-1]), plus y^_i in the LRP: h the
hyper-synthesis' means (mean and LRP transforms) or scales (scale transforms),
d_j the first k = min(i, max_support) decoded slices. These thirty
convolutions are most of the entropy path's time, and each made an im2col of
all of its input, h's channels (160 of 176..256) included. Here their sums are
split by input:

- the parts that read h, for a run of slices at once: one convolution of the
  means by the stacked weight blocks of the run's mean and LRP transforms, and
  one of the scales by those of its scale transforms. A run holds as many slices
  as keep their pending sums within PENDING_BYTES: all ten at Kodak size, one
  at 4K (no more memory than the whole convolutions took there);
- the part that reads the support, per slice: one convolution by the stacked
  blocks of its three transforms;
- the LRP's part that reads y^_i, once the slice is decoded.

Each part is a partial sum of the whole convolution's exact sums (which meet
the layer's bound: `fixed_point`), and so is any total of parts: the same
integers as the whole convolution, whatever the split, the run length or the
order (tests/test_fixed_point.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .charm import ChannelARCodec
from .conv_bands import bandable, same_conv2d_in_bands
from .fixed_point import (
    ONE,
    Arena,
    FixedConv,
    Rounding,
    Scratch,
    array,
    clamp_,
    concat,
    fixed_layer,
    tanh_table,
)

PENDING_BYTES = 32 << 20  # the first-layer sums a run of slices holds, at most
KINDS = ("mean", "scale", "lrp")
Key = tuple[str, int]  # (kind, slice)


@dataclass
class SliceContext:
    """One image's ChARM state: the hyper-synthesis' means and scales (activations)
    and the first-layer sums of the current run's transforms not yet run, as far as
    their known inputs go. Made by `ExactCharm.start`; slices go in order."""

    means: torch.Tensor
    scales: torch.Tensor
    sums: dict[Key, np.ndarray] = field(default_factory=dict)


class ExactCharm(nn.Module):
    """ChannelARCodec's bitstream steps on activations (see the module docstring)."""

    def __init__(self, charm: ChannelARCodec, arena: Arena | None = None):
        super().__init__()
        arena = arena or Arena()
        self.max_support = charm.max_support
        self.num_slices = charm.num_slices
        self.tanh = tanh_table()
        floats = dict(zip(KINDS, (charm.mean_transforms, charm.scale_transforms,
                                  charm.lrp_transforms), strict=True))
        hyper = int(charm.mean_transforms[0][0].in_channels)  # h's channels
        s = charm.slice_channels
        self.rest = nn.ModuleDict()  # each transform's layers after the first
        self.rounding: dict[Key, Rounding] = {}
        # the first layers' weights (scaled integers, `fixed_point.FixedConv`) in
        # blocks by input: those that read h stacked per source, slice after slice
        # (row ranges by key), the support's per slice, the LRP's own per slice. The
        # stacks are allocated once and filled (no second copy to page in at load).
        self.rows: dict[Key, tuple[str, int, int]] = {}
        count = {"means": 0, "scales": 0}
        for i in range(self.num_slices):
            for kind in KINDS:
                source = "scales" if kind == "scale" else "means"
                rows = floats[kind][i][0].out_channels
                self.rows[kind, i] = (source, count[source], count[source] + rows)
                count[source] += rows
        kernel = tuple(charm.mean_transforms[0][0].kernel_size)
        self.stacks = {source: (torch.from_numpy(arena.empty((n, hyper, *kernel))),
                                torch.empty(n, dtype=torch.float64))
                       for source, n in count.items()}
        self.support: list[torch.Tensor | None] = []  # per slice, its kinds' blocks
        scratch = Scratch()
        self.own: list[torch.Tensor] = []  # per slice, the LRP's block that reads y^_i
        for i in range(self.num_slices):
            k = min(i, self.max_support)
            rows = [floats[kind][i][0].out_channels for kind in KINDS]
            support = (torch.from_numpy(arena.empty((sum(rows), s * k, *kernel))) if k
                       else None)
            self.support.append(support)
            for n, kind in enumerate(KINDS):
                transform = floats[kind][i]
                if not bandable(transform[0]) or tuple(transform[0].kernel_size) != kernel:
                    raise ValueError("ChARM's first layers are 'same' convolutions")
                # the whole layer's weights and rounding, its weights in `scratch`
                # (the same memory for each layer: split into the blocks right away)
                first = FixedConv(transform[0], arena=scratch)
                self.rounding[kind, i] = first.rounding
                self.rest[f"{kind}{i}"] = fixed_layer(nn.Sequential(*transform[1:]), arena)
                source, r0, r1 = self.rows[kind, i]
                weight, bias = self.stacks[source]
                weight[r0:r1] = first.weight[:, :hyper]
                bias[r0:r1] = first.bias
                if support is not None:
                    o = sum(rows[:n])
                    support[o : o + rows[n]] = first.weight[:, hyper : hyper + s * k]
                if kind == "lrp":
                    own = first.weight[:, hyper + s * k :]
                    self.own.append(torch.from_numpy(arena.empty(own.shape)).copy_(own))
        # bytes of the pending sums per slice and position of h
        self.pending_per_position = 8 * sum(count.values()) // self.num_slices

    def start(self, means: torch.Tensor, scales: torch.Tensor) -> SliceContext:
        return SliceContext(means, scales)

    def slice_params(self, i: int, ctx: SliceContext, decoded: list[torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        if ("mean", i) not in ctx.sums or ("scale", i) not in ctx.sums:
            self._start_run(ctx, i)
        k = min(i, self.max_support)
        if k:  # the support's part of the three transforms of slice i
            part = array(same_conv2d_in_bands(concat(decoded[:k]), self.support[i], None))
            rows = part.shape[1] // len(KINDS)
            for n, kind in enumerate(KINDS):
                ctx.sums[kind, i] += part[:, n * rows : (n + 1) * rows]
        return self._finish(ctx, ("mean", i)), self._finish(ctx, ("scale", i))

    def finish_slice(self, i: int, ctx: SliceContext, decoded: list[torch.Tensor],
                     symbols: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """y^ of slice i from its integer symbols and mean (activations)."""
        if ("lrp", i) not in ctx.sums:
            raise RuntimeError(f"slice_params({i}) comes before finish_slice({i})")
        y_hat = array(symbols).astype(np.float64)
        y_hat *= ONE
        clamp_(np.add(y_hat, array(mu), out=y_hat))
        ctx.sums["lrp", i] += array(same_conv2d_in_bands(torch.from_numpy(y_hat),
                                                         self.own[i], None))
        lrp = self._finish(ctx, ("lrp", i))
        # + tanh(lrp) / 2, rounded half up: floor(t 2^-1 + 1/2), exact
        half = array(self.tanh(lrp)) * 0.5
        half += 0.5
        y_hat += np.floor(half, out=half)
        return torch.from_numpy(clamp_(y_hat))

    def _start_run(self, ctx: SliceContext, first: int) -> None:
        """The parts that read the means and the scales, of the transforms of slices
        first, first + 1, ... (as many as PENDING_BYTES allows, at least one)."""
        positions = ctx.means.shape[2] * ctx.means.shape[3]
        count = max(1, PENDING_BYTES // max(1, self.pending_per_position * positions))
        keys = [(kind, i) for i in range(first, min(self.num_slices, first + count))
                for kind in KINDS]
        for source, h in (("means", ctx.means), ("scales", ctx.scales)):
            mine = [key for key in keys if self.rows[key][0] == source]
            r0, r1 = self.rows[mine[0]][1], self.rows[mine[-1]][2]  # rows in slice order
            weight, bias = self.stacks[source]
            out = array(same_conv2d_in_bands(h, weight[r0:r1], bias[r0:r1]))
            for key in mine:
                _, start, end = self.rows[key]
                ctx.sums[key] = out[:, start - r0 : end - r0]

    def _finish(self, ctx: SliceContext, key: Key) -> torch.Tensor:
        """The transform's output from its first layer's complete sums."""
        first = torch.from_numpy(self.rounding[key](ctx.sums.pop(key)))
        return self.rest[f"{key[0]}{key[1]}"](first)

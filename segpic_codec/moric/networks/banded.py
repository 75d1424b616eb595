"""Synthesis in bands of rows (CPU fast path, bounded memory).

At full resolution every synthesis activation is a (C, H * W) tensor; on a
CPU each elementwise op streams it through memory and autograd keeps them all
(about 1 GB per megapixel). Here the image is cut into bands of rows that fit
in cache. The forward pass keeps nothing; the backward pass recomputes each
band under autograd and accumulates the gradients (activation checkpointing
by bands). A band is computed with HALO extra rows on each side, which the two
3x3 layers of the GMN need, then cropped: the result is exactly the full
image's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...cores import run_threaded
from .regions import RegionMap
from .synthesis import Synthesis

HALO = 2  # two 3x3 layers
BAND_PIXELS = 1 << 15


def bands(height: int, width: int, min_rows: int = 4) -> list[tuple[int, int, int, int]]:
    """[(first row, end row, first input row, end input row)]."""
    rows = max(min_rows, BAND_PIXELS // max(width, 1))
    out = []
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        out.append((r0, r1, max(0, r0 - HALO), min(height, r1 + HALO)))
    return out


def band_image(synthesis: Synthesis, z_band: Tensor, coords: Tensor, width: int,
                band: tuple[int, int, int, int], regions: RegionMap) -> Tensor:
    """Image rows [r0, r1) from the dense latents of input rows [i0, i1)."""
    r0, r1, i0, i1 = band
    return synthesis(z_band, coords[:, r0 * width: r1 * width], i1 - i0, width,
                     crop=(r0 - i0, i1 - r1), split=regions.split(r0, r1))


@torch.no_grad()
def synthesize(synthesis: Synthesis, z: Tensor, coords: Tensor, height: int, width: int,
               regions: RegionMap, rows: tuple[int, int] | None = None) -> Tensor:
    """(7, N) dense latents -> (3, N) image, band by band; only the bands
    meeting `rows` [first, end) are drawn (the others stay zero)."""
    out = z.new_zeros(3, height * width)
    first, end = rows or (0, height)
    for band in bands(height, width):
        if band[1] <= first or band[0] >= end:
            continue
        r0, r1, i0, i1 = band
        out[:, r0 * width: r1 * width] = band_image(
            synthesis, z[:, i0 * width: i1 * width], coords, width, band, regions)
    return out


GmnCache = list  # per band: the GMN's projections (list[Tensor]), or None until computed


def gmn_cache(height: int, width: int) -> GmnCache:
    """An empty cache of the GMN's projections for `squared_error_value`."""
    return [None] * len(bands(height, width))


def squared_error_value(synthesis: Synthesis, z: Tensor, coords: Tensor, target: Tensor,
                        height: int, width: int, regions: RegionMap, workers: int = 1,
                        cache: GmnCache | None = None) -> Tensor:
    """`squared_error` without gradients, its bands on up to `workers` threads
    (the parameter search's many evaluations). The bands' sums are added in
    their order, as `squared_error` adds them: the same value, bit for bit,
    for any number of threads.

    cache (`gmn_cache`): the GMN's projections of each band, kept from an
    earlier call and reused; the caller empties it whenever z or the GMN
    changes. When only the LSNs change, most of a band's work is then saved
    (the same bits: the same operations on the same values)."""
    plan = bands(height, width)
    sums: list[Tensor | None] = [None] * len(plan)

    def one(k: int) -> None:
        r0, r1, i0, i1 = plan[k]
        with torch.no_grad():  # grad mode is per thread
            projected = None if cache is None else cache[k]
            if projected is None:
                projected = synthesis.gmn.features_of(z[:, i0 * width: i1 * width], i1 - i0,
                                                      width, crop=(r0 - i0, i1 - r1))
                if cache is not None:
                    cache[k] = projected
            image = synthesis.draw(projected, coords[:, r0 * width: r1 * width],
                                   regions.split(r0, r1))
            sums[k] = torch.sum((image - target[:, r0 * width: r1 * width]) ** 2)

    run_threaded(one, range(len(plan)), workers)
    total = z.new_zeros(())
    for s in sums:
        total += s
    return total


class _BandedSquaredError(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, coords: Tensor, target: Tensor, synthesis: Synthesis,
                regions: RegionMap, height: int, width: int, *params: Tensor) -> Tensor:
        total = z.new_zeros(())
        for band in bands(height, width):
            r0, r1, i0, i1 = band
            image = band_image(synthesis, z[:, i0 * width: i1 * width], coords, width, band,
                                regions)
            total += torch.sum((image - target[:, r0 * width: r1 * width]) ** 2)
        ctx.save_for_backward(z, coords, target)
        ctx.synthesis, ctx.regions, ctx.size = synthesis, regions, (height, width)
        return total

    @staticmethod
    def backward(ctx, grad_total: Tensor):
        z, coords, target = ctx.saved_tensors
        synthesis: Synthesis = ctx.synthesis
        height, width = ctx.size
        params = list(synthesis.parameters())
        want_z = ctx.needs_input_grad[0]
        grad_z = torch.zeros_like(z) if want_z else None
        grad_params = [torch.zeros_like(p) for p in params]
        for band in bands(height, width):
            r0, r1, i0, i1 = band
            with torch.enable_grad():
                z_band = z[:, i0 * width: i1 * width].detach().requires_grad_(want_z)
                image = band_image(synthesis, z_band, coords, width, band, ctx.regions)
                error = image - target[:, r0 * width: r1 * width]
                loss = torch.sum(error * error) * grad_total
                inputs = ([z_band] if want_z else []) + params
                grads = list(torch.autograd.grad(loss, inputs, allow_unused=True))
            if grad_z is not None:
                grad_z[:, i0 * width: i1 * width] += grads.pop(0)
            for acc, g in zip(grad_params, grads, strict=True):
                if g is not None:
                    acc += g
        return (grad_z, None, None, None, None, None, None, *grad_params)


def squared_error(synthesis: Synthesis, z: Tensor, coords: Tensor, target: Tensor,
                  height: int, width: int, regions: RegionMap) -> Tensor:
    """Sum of squared errors of the synthesised image against `target` (3, N),
    differentiable w.r.t. z and the synthesis parameters."""
    return _BandedSquaredError.apply(z, coords, target, synthesis, regions, height, width,
                                     *synthesis.parameters())

"""Horizontal bands: the large stages of the transforms, computed a band of rows
at a time so that their activations never exist for the whole image at once.
Torch modules in, the same result out (up to float rounding; exact when the
margins cover the stages' reach, which tests/test_roundtrip.py checks)."""

from __future__ import annotations

import torch
from torch import nn

from .regions import Partition

# The full-resolution stages (pixels <-> 1/4 resolution) and the RATs at 1/4
# resolution run in horizontal bands of rows at 1/4 resolution, so a 4K image never
# has full-resolution activations (or per-pixel RAT kernels) in memory all at once.
# Bands and margins are multiples of the attention window (8), so windows fall where
# they fall without banding; the margin covers the stages' receptive fields
# (residual units, 5x5 and transposed convolutions). The result equals the unbanded
# computation up to float rounding (tests/test_roundtrip.py); banding depends only
# on the image size (and `exact`), so encoder and decoder agree exactly.
# The exact (float64) synthesis keeps the bands of BAND_ROWS rows that every earlier
# version used, so that it reproduces their pixels bit for bit; everything else uses
# bands of at least BAND_ROWS rows and at most BAND_POSITIONS positions at 1/4
# resolution: a Kodak image (192 x 128 at 1/4) is one band, with no margins computed
# twice (only the small bands below have margins there).
BAND_ROWS = 64
BAND_MARGIN = 16
BAND_POSITIONS = 192 * 128


def band_rows(width: int, exact: bool = False) -> int:
    """Rows (at 1/4 resolution) per band of a map `width` positions wide at 1/4
    resolution."""
    if exact:
        return BAND_ROWS
    return max(BAND_ROWS, BAND_POSITIONS // max(1, width) // 8 * 8)


def banded(stage: nn.Module, x: torch.Tensor, rows: int, margin: int, step_in: int = 1,
            step_out: int = 1) -> torch.Tensor:
    """stage(x) computed in horizontal bands. Bands are counted in units of the
    1/4-resolution grid: a unit is `step_in` rows of x and `step_out` rows of the
    output. Exact when the margin covers the stage's receptive field."""
    h = x.shape[2] // step_in
    if h <= rows:
        return stage(x)
    result = None  # filled band by band: no list of pieces to concatenate (twice the map)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
        out = stage(x[:, :, a0 * step_in : a1 * step_in])
        piece = out[:, :, (r0 - a0) * step_out : (r1 - a0) * step_out]
        if result is None:
            result = empty_like_rows(out, h * step_out)
        result[:, :, r0 * step_out : r1 * step_out] = piece
    return result


def empty_like_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """An uninitialised tensor like `t` (dtype, device, channels-last or not) with
    `rows` rows."""
    channels_last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous()
    return torch.empty((t.shape[0], t.shape[1], rows, t.shape[3]), dtype=t.dtype,
                       device=t.device, memory_format=torch.channels_last if channels_last
                       else torch.contiguous_format)


# Within those bands, three stages hold the largest activations: the last two
# up blocks of g_s1 (a SAL at 1/2 resolution makes 2N channels, a GDN squares N
# channels at full resolution), the encoder's two down blocks, and the RATs'
# per-pixel kernels (k*k times their input). Outside the exact path they run in
# small bands of about TAIL_POSITIONS positions at 1/4 resolution (4 bands for a
# Kodak image) with small margins: the 5x5 (transposed) convolutions reach one row
# beyond a band at each of the two stages, 6 pixel rows for the down blocks, and
# the RAT's CTL, DKG and DPSConv 2 rows, so 2 rows at 1/4 resolution make those
# bands exact up to float rounding. The window-attention modules at 1/4
# resolution then run alone in the large bands with a margin of one window
# (WAM_MARGIN; bands keep whole windows, so margins are multiples of 8): their
# residual units reach 3 rows each side, a shifted window's wrapped-around rows 4.
# Together they lower the peak of a Kodak decode by over 100 MB, and the margins
# no longer add half the work to a 4K image's full-resolution stages (BAND_MARGIN
# is 16 rows on 64).
TAIL_POSITIONS = 192 * 32
TAIL_MIN_ROWS = 16
TAIL_MARGIN = 2
WAM_MARGIN = 8


def tail_rows(width: int) -> int:
    """Rows (at 1/4 resolution) of the small bands of a map `width` positions wide."""
    return max(TAIL_MIN_ROWS, TAIL_POSITIONS // max(1, width))


def attention_in_bands(g_s1: nn.Sequential, x: torch.Tensor, rows: int) -> torch.Tensor:
    """g_s1's first stage, its window attention (at 1/4 resolution), in bands of
    `rows`; `up_blocks_in_bands` does the rest. Two calls, so that the caller can
    let go of x in between (at 4K, 265 MB)."""
    return banded(g_s1[:1], x, rows, WAM_MARGIN)


def up_blocks_in_bands(g_s1: nn.Sequential, attended: torch.Tensor) -> torch.Tensor:
    """The rest of g_s1 (1/4 resolution -> pixels) in small bands."""
    return banded(g_s1[1:], attended, tail_rows(attended.shape[3]), TAIL_MARGIN, step_out=4)


def analysis_g_a1(g_a1: nn.Sequential, x: torch.Tensor, rows: int) -> torch.Tensor:
    """g_a1(x) (pixels -> 1/4 resolution): the down blocks in small bands, the
    window attention in bands of `rows`."""
    head = banded(g_a1[:2], x, tail_rows(x.shape[3] // 4), TAIL_MARGIN, step_in=4)
    return banded(g_a1[2:], head, rows, WAM_MARGIN)


def rat_in_bands(rat: nn.Module, x: torch.Tensor, prototypes: torch.Tensor,
                 partition: Partition, rows: int, exact: bool) -> torch.Tensor:
    """A RAT at 1/4 resolution in small bands (with `exact`, the earlier bands)."""
    if exact:
        return rat.forward_banded(x, prototypes, partition, rows)
    return rat.forward_banded(x, prototypes, partition, tail_rows(x.shape[3]), TAIL_MARGIN)

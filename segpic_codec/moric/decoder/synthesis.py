"""MoRIC's synthesis (GMN and one LSN per region) in numpy, in bands of rows.

The networks are those of `networks/synthesis.py` (which documents them),
built from the parameter stream's integers in either arithmetic of `layers`.
Each band of rows is computed with HALO extra rows on each side for the GMN's
two 3x3 layers (replicated borders), then cropped, so bands give the whole
image's result; a band's pixels are drawn by their region's LSN (gathered
with one index per region). In the integer arithmetic every sum is exact, so
the result does not depend on the band or on how a sum is split.
"""

from __future__ import annotations

import numpy as np

from ..bitstream.parameters import LOCAL_WIDTH, ModuleIntegers
from .layers import FloatArithmetic, IntegerArithmetic, Layer

HALO = 2  # two 3x3 layers
BAND_PIXELS = 1 << 14  # per band: its activations stay in the CPU's caches (measured best)


class Synthesis:
    """The GMN and the LSNs of one file, in one arithmetic."""

    def __init__(self, gmn: ModuleIntegers, lsn: ModuleIntegers, regions: int,
                 arithmetic: FloatArithmetic | IntegerArithmetic):
        self.ar = ar = arithmetic
        self.l1 = ar.layer(gmn["w1"], gmn["b1"])
        self.l3 = ar.layer(gmn["w3"], gmn["b3"], identity=True)
        self.l4 = ar.layer(gmn["w4"], gmn["b4"], identity=True)
        # M_k = [local (3) | h1 (F) | h2 .. h_{k+2} (3 each)], built whole so that
        # the integer bound covers every column, then split by input
        mods = [ar.layer(gmn[f"mod_w.{k}"], gmn[f"mod_b.{k}"]) for k in range(3)]
        features = self.l1.weight.shape[0]
        l2 = ar.layer(gmn["w2"], gmn["b2"])
        # h2's layer and the modulations' h1 columns share their input h1
        self.l2 = Layer(np.concatenate([l2.weight] + [m.weight[:, LOCAL_WIDTH:LOCAL_WIDTH
                                                                + features] for m in mods]),
                        np.concatenate([l2.bias[:, 0]] + [m.bias[:, 0] for m in mods]),
                        l2.exponent)
        # the modulations' h2 .. h4 columns, zero where M_k does not see h_{k+3}
        rest = np.zeros((9, 9), l2.weight.dtype)
        for k, m in enumerate(mods):
            cols = m.weight[:, LOCAL_WIDTH + features:]
            rest[3 * k:3 * k + 3, :cols.shape[1]] = cols
        self.rest = rest
        self.mod_local = [m.weight[:, :LOCAL_WIDTH].copy() for m in mods]
        self.mods = mods
        self.lsns = [self._lsn_layers(lsn, r) for r in range(regions)]

    def _lsn_layers(self, lsn: ModuleIntegers, region: int) -> tuple[Layer, list[Layer]]:
        """(the input layer, the three residual layers) of one region's LSN."""
        (w_res, w_exp), (b_res, b_exp) = lsn[f"{region}.w_res"], lsn[f"{region}.b_res"]
        residuals = [self.ar.layer((w_res[k], w_exp), (b_res[k], b_exp), identity=True,
                                   activated=k < 2) for k in range(3)]
        return self.ar.layer(lsn[f"{region}.w_in"], lsn[f"{region}.b_in"]), residuals

    def _linear(self, layer: Layer, x: np.ndarray, activate: bool = True) -> np.ndarray:
        acc = layer.weight @ x
        acc += layer.bias
        return self.ar.finish(acc, layer, activate)

    def _conv(self, layer: Layer, x: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """3x3 convolution with replicated borders of (3, rows * cols), then finish."""
        image = np.pad(x.reshape(3, rows, cols), ((0, 0), (1, 1), (1, 1)), mode="edge")
        taps = np.stack([image[:, dy:dy + rows, dx:dx + cols]
                         for dy in range(3) for dx in range(3)], axis=1)
        # weight (3, 3 * 9) in (in channel, dy, dx) order, as the taps
        return self._linear(layer, taps.reshape(27, rows * cols))

    def band(self, z: np.ndarray, rows: int, cols: int, crop: tuple[int, int],
             coords: np.ndarray, split: list[np.ndarray | None] | None) -> np.ndarray:
        """(7, rows * cols) dense latents of a band with its halo -> (3, n) values
        of the cropped rows, n = (rows - top - bottom) * cols; `split`: per
        region, the band pixels it draws (None: not drawn); None: LSN 0 draws all."""
        h1 = self._linear(self.l1, z)
        both = self.l2.weight @ h1
        both += self.l2.bias
        h2 = self.ar.finish(both[:3], self.l2, True)
        h3 = self._conv(self.l3, h2, rows, cols)
        h4 = self._conv(self.l4, h3, rows, cols)
        top, bottom = crop
        keep = slice(top * cols, (rows - bottom) * cols)
        projected = both[3:, keep] + self.rest @ np.concatenate(
            [h2[:, keep], h3[:, keep], h4[:, keep]])
        if split is None:
            return self._lsn(0, coords, projected)
        out = np.zeros((3, projected.shape[1]), projected.dtype)
        for r, index in enumerate(split):
            if index is not None and index.size:
                out[:, index] = self._lsn(r, coords[:, index], projected[:, index])
        return out

    def _lsn(self, region: int, coords: np.ndarray, projected: np.ndarray) -> np.ndarray:
        first, residuals = self.lsns[region]
        x = self._linear(first, coords)
        for k in range(3):
            a = self.ar.finish(projected[3 * k:3 * k + 3] + self.mod_local[k] @ x,
                               self.mods[k], True)
            x = self._linear(residuals[k], a, activate=k < 2)
        return x


def bands(first: int, end: int, height: int, width: int
          ) -> list[tuple[int, int, int, int]]:
    """[(first row, end row, first input row, end input row)] covering rows
    [first, end)."""
    rows = max(4, BAND_PIXELS // max(width, 1))
    return [(r0, min(end, r0 + rows), max(0, r0 - HALO), min(height, min(end, r0 + rows)
                                                             + HALO))
            for r0 in range(first, end, rows)]


"""MoRIC's contour fill by runs along rows: the runs are exactly the pixels of
non-zero winding number."""

from __future__ import annotations

import numpy as np

from segpic_codec.moric.contours.geometry import polygon_runs


def winding_reference(ys: np.ndarray, xs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Non-zero winding number of every pixel centre, edge by edge."""
    cy, cx = np.mgrid[0:height, 0:width] + 0.5
    winding = np.zeros((height, width), dtype=int)
    for a in range(len(ys)):
        y0, x0, y1, x1 = ys[a], xs[a], ys[(a + 1) % len(ys)], xs[(a + 1) % len(ys)]
        if y0 == y1:
            continue
        crosses = (min(y0, y1) <= cy) & (cy < max(y0, y1))
        # crossing left of the centre: x0 + (cy - y0) (x1 - x0) / (y1 - y0) < cx, exactly
        left = (x0 - cx) * (y1 - y0) + (cy - y0) * (x1 - x0)
        left = left < 0 if y1 > y0 else left > 0
        winding += np.where(crosses & left, 1 if y1 > y0 else -1, 0)
    return winding != 0


def runs_mask(rows: np.ndarray, starts: np.ndarray, stops: np.ndarray, height: int,
              width: int) -> np.ndarray:
    cover = np.zeros((height, width), dtype=int)
    for r, a, b in zip(rows.tolist(), starts.tolist(), stops.tolist(), strict=True):
        cover[r, a:b] += 1
    assert cover.max(initial=0) <= 1  # runs are disjoint
    return cover == 1


def test_runs_are_the_pixels_of_non_zero_winding():
    rng = np.random.default_rng(5)
    for trial in range(300):
        height, width = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        n = int(rng.integers(1, 12))
        if trial % 2:  # long steps back and forth, reaching outside the image like C*
            ys = np.cumsum(rng.integers(-40, 41, n)) + int(rng.integers(0, height))
            xs = np.cumsum(rng.integers(-40, 41, n)) + int(rng.integers(0, width))
        else:
            ys, xs = rng.integers(-3, height + 4, n), rng.integers(-3, width + 4, n)
        runs = polygon_runs(ys, xs, height, width)
        assert np.array_equal(runs_mask(*runs, height, width),
                              winding_reference(ys, xs, height, width)), (ys, xs)

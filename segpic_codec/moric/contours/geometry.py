"""Integer geometry of region contours: components, crack boundaries, polygon fill.

Everything the decoder computes here is integer arithmetic on numpy int64 (or
plain Python ints), so encoder and decoder rasterise a contour into the same
pixels on every machine. Coordinates of contour points are pixel *corners*:
(y, x) with 0 <= y <= height and 0 <= x <= width; pixel (r, c) is the unit
square between corners (r, c) and (r + 1, c + 1).
"""

from __future__ import annotations

import numpy as np

# Crack-code headings, clockwise on screen (y grows downwards): E, S, W, N.
HEADING_DY = (0, 1, 0, -1)
HEADING_DX = (1, 0, -1, 0)
STRAIGHT, LEFT, RIGHT = 0, 1, 2
TURN_DELTA = (0, -1, 1)  # heading change of STRAIGHT, LEFT, RIGHT

# Direction table for polygonal chains: DIRECTIONS angles 2*pi*k/DIRECTIONS,
# unit vectors in fixed point (UNIT_SHIFT fractional bits). Written out as
# integers (the first quadrant's cosines) so that no machine's libm can change
# a chain's geometry.
DIRECTIONS = 256
UNIT_SHIFT = 14
_QUADRANT_COS = (
    16384, 16379, 16364, 16340, 16305, 16261, 16207, 16143, 16069, 15986, 15893, 15791,
    15679, 15557, 15426, 15286, 15137, 14978, 14811, 14635, 14449, 14256, 14053, 13842,
    13623, 13395, 13160, 12916, 12665, 12406, 12140, 11866, 11585, 11297, 11003, 10702,
    10394, 10080, 9760, 9434, 9102, 8765, 8423, 8076, 7723, 7366, 7005, 6639, 6270, 5897,
    5520, 5139, 4756, 4370, 3981, 3590, 3196, 2801, 2404, 2006, 1606, 1205, 804, 402, 0,
)


def _unit_vectors() -> tuple[np.ndarray, np.ndarray]:
    quarter = DIRECTIONS // 4
    cos = np.empty(DIRECTIONS, dtype=np.int64)
    for k in range(DIRECTIONS):
        q, i = divmod(k, quarter)
        # cos over a full turn from the first quadrant by symmetry
        cos[k] = (_QUADRANT_COS[i], -_QUADRANT_COS[quarter - i], -_QUADRANT_COS[i],
                  _QUADRANT_COS[quarter - i])[q]
    sin = np.roll(cos, quarter)  # sin(a) = cos(a - pi/2)
    return cos, sin


UNIT_X, UNIT_Y = _unit_vectors()


def step_table(length: int) -> tuple[list[int], list[int]]:
    """(dy, dx) lists over all DIRECTIONS for one step length."""
    half = 1 << (UNIT_SHIFT - 1)
    dx = ((length * UNIT_X + half) >> UNIT_SHIFT).tolist()
    dy = ((length * UNIT_Y + half) >> UNIT_SHIFT).tolist()
    return dy, dx


def label_components(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4-connected components of equal label.

    Returns (component map (H, W) int32 numbered 0.., label of each component,
    flat index of each component's first pixel in raster order)."""
    # imported here: scikit-image takes ~0.5 s to import and only the encoder needs it
    from skimage.measure import label as connected_components

    comp = connected_components(labels.astype(np.int64) + 1, background=0, connectivity=1)
    comp = comp.astype(np.int32) - 1
    ids, first = np.unique(comp.ravel(), return_index=True)
    order = np.argsort(first, kind="stable")
    # renumber in raster order of first pixel so the numbering is ours, not skimage's
    renumber = np.empty(ids.size, dtype=np.int32)
    renumber[ids[order]] = np.arange(ids.size, dtype=np.int32)
    comp = renumber[comp]
    first = first[order]
    return comp, labels.ravel()[first].astype(np.int64), first.astype(np.int64)


def trace_crack(table: list[int] | bytes, value: int, width: int, start: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outer crack boundary of the 4-connected set {table == value} containing pixel `start`.

    `table` is a flat map of the image padded by one pixel on every side
    (width `width` + 2) that holds `value` exactly on the set, so the walk
    never leaves the padded image; `start` is the set's first pixel in raster
    order (unpadded flat index), so its top-left corner is on the boundary and
    the walk starts there heading east with the set on its right.
    Returns (turn symbols uint8, corner ys, corner xs); the corners are those
    of every unit edge, start first, and the turns the decisions at every
    corner after the start."""
    stride = width + 2
    y0, x0 = divmod(start, width)
    # padded flat index of the pixel ahead-left / ahead-right of corner (y, x):
    # offsets per heading, relative to padded pixel (y, x) = (y + 1) * stride + x + 1
    ahead_left = (-stride, 0, -1, -stride - 1)
    ahead_right = (0, -1, -stride - 1, -stride)
    dys, dxs = HEADING_DY, HEADING_DX
    ys, xs, turns = [y0], [x0], []
    y, x, heading = y0, x0 + 1, 0
    while y != y0 or x != x0:
        ys.append(y)
        xs.append(x)
        base = (y + 1) * stride + x + 1
        if table[base + ahead_right[heading]] != value:
            turns.append(RIGHT)
            heading = (heading + 1) & 3
        elif table[base + ahead_left[heading]] == value:
            turns.append(LEFT)
            heading = (heading - 1) & 3
        else:
            turns.append(STRAIGHT)
        y += dys[heading]
        x += dxs[heading]
    return (np.asarray(turns, dtype=np.uint8), np.asarray(ys, dtype=np.int64),
            np.asarray(xs, dtype=np.int64))


def padded_table(values: np.ndarray, outside: int) -> list[int]:
    """Flat list of an integer map padded by one pixel of `outside` (for `trace_crack`)."""
    return np.pad(values, 1, constant_values=outside).ravel().tolist()


def corners_of_turns(y0: int, x0: int, turns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Polygon corners (where the heading changes) of a crack chain from its turns."""
    turns_arr = np.asarray(turns, dtype=np.int64)
    delta = np.asarray(TURN_DELTA, dtype=np.int64)[turns_arr]
    headings = np.concatenate([[0], np.cumsum(delta) & 3])
    ys = np.concatenate([[y0], y0 + np.cumsum(np.asarray(HEADING_DY)[headings])])
    xs = np.concatenate([[x0], x0 + np.cumsum(np.asarray(HEADING_DX)[headings])])
    keep = np.concatenate([[True], turns_arr != STRAIGHT, [True]])
    return ys[keep], xs[keep]


def polygon_runs(ys: np.ndarray, xs: np.ndarray, height: int, width: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels whose centre has a non-zero winding number around the closed
    polygon (corners ys, xs; the last corner joins the first), as runs along
    rows: (rows, starts, stops), int64; the pixels (rows[i], starts[i] ..
    stops[i] - 1) of every run i are inside, no others. Runs are disjoint.

    Exact integer scanline: pixel (r, c) is inside when the signed edge
    crossings of the row r + 1/2 strictly left of c + 1/2 sum to non-zero.
    Work and memory grow with the rows the edges cross within the image (and
    a sort of those crossings), not with the polygon's area or bounding box,
    so that a stream of image-spanning slivers costs the decoder no more than
    its rows crossed (`stream._rows_crossed`, budgeted)."""
    ys = np.asarray(ys, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.int64)
    yb, xb = np.roll(ys, -1), np.roll(xs, -1)
    moving = ys != yb
    ya, xa, yb, xb = ys[moving], xs[moving], yb[moving], xb[moving]
    sign = np.where(yb > ya, 1, -1)
    # rows whose centre r + 1/2 lies in [min(ya, yb), max(ya, yb)), within the image
    lo = np.clip(np.minimum(ya, yb), 0, height)
    hi = np.clip(np.maximum(ya, yb), 0, height)
    counts = hi - lo
    edge = np.repeat(np.arange(counts.size), counts)
    rows = lo[edge] + np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts)
    dy = (yb - ya)[edge]
    dx = (xb - xa)[edge]
    # crossing x = xa + (r + 1/2 - ya) * dx / dy; first pixel right of it has
    # c + 1/2 > x, i.e. c = floor((2 x - 1) / 2) + 1, done over the denominator 2 dy
    num = 2 * xa[edge] * dy + (2 * rows + 1 - 2 * ya[edge]) * dx - dy
    den = 2 * dy
    num = np.where(den < 0, -num, num)
    den = np.abs(den)
    first_col = np.clip(num // den + 1, 0, width)
    # crossings in raster order; a row's signed crossings sum to zero (the
    # polygon is closed), so the running sum is each row's winding number
    key = rows * (width + 1) + first_col
    order = np.argsort(key, kind="stable")
    key = key[order]
    winding = np.cumsum(sign[edge][order])
    run = (winding[:-1] != 0) & (key[1:] > key[:-1])
    start, stop = key[:-1][run], key[1:][run]
    return start // (width + 1), start % (width + 1), stop % (width + 1)


def fill_polygon(ys: np.ndarray, xs: np.ndarray, height: int, width: int
                 ) -> tuple[int, int, np.ndarray]:
    """`polygon_runs` as a mask: (row0, col0, mask) with mask covering the
    polygon's bounding box clipped to the image (possibly empty). Work and
    memory grow with the box: for the encoder's own components."""
    ys = np.asarray(ys, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.int64)
    r0, r1 = max(int(ys.min()), 0), min(int(ys.max()), height)
    c0, c1 = max(int(xs.min()), 0), min(int(xs.max()), width)
    if r1 <= r0 or c1 <= c0:
        return 0, 0, np.zeros((0, 0), dtype=bool)
    rows, starts, stops = polygon_runs(ys, xs, height, width)
    # runs lie within the box (crossings lie between the extreme corners)
    steps = np.zeros((r1 - r0, c1 - c0 + 1), dtype=np.int8)
    np.add.at(steps, (rows - r0, starts - c0), 1)
    np.add.at(steps, (rows - r0, stops - c0), -1)
    return r0, c0, np.cumsum(steps, axis=1, dtype=np.int8)[:, :-1] != 0

"""The decoder's canvas: chains painted in order as runs of pixels along rows
(`geometry.polygon_runs`), a later chain over an earlier one.

Writing every run pixel by pixel would cost its length, and every chain of a
stream may cover the whole image (some 30 C* steps enclose a Kodak image). The
canvas records each run with its chain's number and finds, for every pixel,
the highest number among the runs that cover it (0, the base label, where none
does): a run of length n is two blocks of length 2^floor(log2 n) that together
cover it exactly; the blocks' numbers go into a table of block starts, level by
level from the longest blocks down, each level handing its maximum to the two
halves of every block (one vectorised maximum over the image). The work is
O(runs) plus O(H W log2 W) per resolution. Pending runs are resolved whenever
H W of them wait, so memory stays O(H W). A run starts where an edge crosses
its row, so the runs are at most the rows crossed, which the rows budget
(`stream._rows_budget`, about 4 H W) bounds: a stream costs a few resolutions.
"""
from __future__ import annotations

import numpy as np


def _highest_cover(starts: np.ndarray, lengths: np.ndarray, numbers: np.ndarray,
                   size: int) -> np.ndarray:
    """For each of `size` flat pixels, the highest number among the runs
    [starts[i], starts[i] + lengths[i]) (lengths >= 1) covering it; 0 where none."""
    table = np.zeros(size, dtype=np.int32)
    if starts.size == 0:
        return table
    # floor(log2(length)), exact: frexp splits a float into mantissa and exponent
    levels = np.frexp(lengths.astype(np.float64))[1] - 1
    top = int(levels.max())
    for level in range(top, -1, -1):
        block = 1 << level
        if level < top:
            # table[j] holds blocks [j, j + 2 block); each half takes their number
            np.maximum(table[block:], table[:-block], out=table[block:])
        here = levels == level
        first, number = starts[here], numbers[here]
        np.maximum.at(table, first, number)
        np.maximum.at(table, first + lengths[here] - block, number)
    return table


class RunCanvas:
    """A label map (height, width) filled with `base`, painted run by run."""

    def __init__(self, height: int, width: int, base: int) -> None:
        self.height, self.width = height, width
        self._labels = [base]  # label of each painting; 0 is the canvas itself
        self._highest = np.zeros(height * width, dtype=np.int32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_runs = 0

    def paint(self, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray, label: int) -> None:
        """Paint the pixels (rows[i], starts[i] .. stops[i] - 1) with `label`
        over everything painted before."""
        number = len(self._labels)
        self._labels.append(label)
        self._pending.append((rows * self.width + starts, stops - starts,
                              np.full(rows.size, number, dtype=np.int32)))
        self._pending_runs += rows.size
        if self._pending_runs >= self.height * self.width:
            self._resolve()

    def _resolve(self) -> None:
        if not self._pending:
            return
        starts, lengths, numbers = (np.concatenate(column)
                                    for column in zip(*self._pending, strict=True))
        self._pending, self._pending_runs = [], 0
        np.maximum(self._highest, _highest_cover(starts, lengths, numbers, self._highest.size),
                   out=self._highest)

    def labels(self) -> np.ndarray:
        """The painted label map (height, width) int32."""
        self._resolve()
        label_of = np.asarray(self._labels, dtype=np.int32)
        return label_of[self._highest].reshape(self.height, self.width)

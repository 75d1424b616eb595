"""Nonlinearities of fixed-point networks as integer tables: the same bits on
every machine (torch-free; both codecs' exact networks read them).

Activations are integers a at scale 2^-FRAC_BITS. A function f is tabulated
every 2^-TABLE_BITS with `exact_math` (reproducible float64) and rounded to
activations; between two entries it is interpolated linearly, in integers:

    f(a) = (entry[i] 2^SUBSTEP + (entry[i + 1] - entry[i]) frac + 2^(SUBSTEP - 1)) >> SUBSTEP

with i = a >> SUBSTEP and frac = a & (2^SUBSTEP - 1), SUBSTEP = FRAC_BITS -
TABLE_BITS. The interpolation error (h^2/8 max|f''| <= 2e-6 for GELU and tanh)
is below one activation step (2^-16). `dense_table` evaluates that formula at
every activation of the table's range once, so that applying it is one gather.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

FRAC_BITS = 16
TABLE_BITS = 8
SUBSTEP = FRAC_BITS - TABLE_BITS


@functools.cache
def table(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float
          ) -> tuple[np.ndarray, int]:
    """(fn on the grid lo..hi every 2^-TABLE_BITS as activations (int64), the
    grid index of lo); made once per process, read-only."""
    k0, k1 = int(lo * (1 << TABLE_BITS)), int(hi * (1 << TABLE_BITS))
    grid = np.arange(k0, k1 + 1, dtype=np.float64) / (1 << TABLE_BITS)
    values = np.rint(fn(grid) * (1 << FRAC_BITS)).astype(np.int64)
    values.setflags(write=False)
    return values, k0


@functools.cache
def steps(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """(entry[i] 2^SUBSTEP, entry[i + 1] - entry[i] (0 after the last)) of `table`,
    int64: the interpolation is (start[i] + step[i] frac + 2^(SUBSTEP - 1)) >> SUBSTEP."""
    entries, _ = table(fn, lo, hi)
    start, step = entries << SUBSTEP, np.append(np.diff(entries), 0)
    start.setflags(write=False)
    step.setflags(write=False)
    return start, step


@functools.cache
def dense_table(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float
                ) -> tuple[np.ndarray, int]:
    """(the interpolated f at every activation from lo to hi, as float64 holding
    integers, the activation of its first entry); read-only."""
    entries, k0 = table(fn, lo, hi)
    return _interpolated(entries), k0 << SUBSTEP


@functools.cache
def dense_core(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float
               ) -> tuple[np.ndarray, int]:
    """`dense_table` of a function that is 0 below the table and the identity
    above it (GELU), without the ends where the table is already that: (the
    interpolated f at every activation from the last entry that is 0 before the
    first that is not, to the first entry that equals its activation after the
    last that does not; the activation of its first value). Between two entries
    that are 0 (or two that equal their activations) the interpolation is 0 (the
    activation itself) at every activation, so with `core` and `low` returned,

        f(a) = core[clip(a - low, 0, len(core) - 1)]  if a <= low + len(core) - 1,  else a

    at every activation a, as the whole table and its ends give it. Raises
    ValueError for a table whose first entry is not 0 or whose last is not its
    activation."""
    entries, k0 = table(fn, lo, hi)
    activations = np.arange(k0, k0 + entries.size, dtype=np.int64) << SUBSTEP
    zero, identity = entries == 0, entries == activations
    if not (zero[0] and identity[-1]):
        raise ValueError("the table is not 0 at its start and the identity at its end")
    first = int(np.argmin(zero)) - 1  # the last 0 before the first non-0 entry
    last = entries.size - int(np.argmin(identity[::-1]))  # the first identity after
    return _interpolated(entries[first : last + 1]), (k0 + first) << SUBSTEP


def _interpolated(entries: np.ndarray) -> np.ndarray:
    """The table's linear interpolation at every activation from its first entry
    to its last (int64 entries -> read-only float64 holding integers). Row i,
    column frac is the activation (first + i) 2^SUBSTEP + frac: one 2-D array, no
    index arrays of the table's size."""
    frac = np.arange(1 << SUBSTEP, dtype=np.int64)
    values = (entries[:-1, None] << SUBSTEP) + np.diff(entries)[:, None] * frac[None, :]
    values += 1 << (SUBSTEP - 1)
    values >>= SUBSTEP
    out = np.append(values.reshape(-1), entries[-1]).astype(np.float64)
    out.setflags(write=False)
    return out

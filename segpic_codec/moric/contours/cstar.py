"""C* chain coding (MoRIC, NeurIPS 2025): a region contour as a polygonal chain.

From a start corner the chain takes steps of a fixed length T. The first step
and every reset pick an absolute direction out of ABSOLUTE_DIRECTIONS; the
other steps pick one of three offsets (straight, left, right) from the previous
direction, at an angular spacing that adapts to the contour: it halves while
the chain runs straight (finer steering) and doubles when the chain turns more
than one spacing (offset adaptation). When no offset lands near the contour the
encoder emits an escape and an absolute direction (a reset), which also
restores the initial spacing. The polygon closes with a straight edge from its
last vertex back to the start. Move-to-front over the four step tokens turns
runs of equal moves into runs of rank 0 for the entropy coder.

The chain state (direction, spacing, angle history) is integer-only and shared
by encoder and decoder through `ChainState`, so both build identical vertices.
Directions index `geometry.DIRECTIONS` (256 per turn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .entropy import AdaptiveModel, ContourFormatError, Reader, Writer, uniform_rows
from .geometry import DIRECTIONS, step_table

STRAIGHT, LEFT, RIGHT, ESCAPE = 0, 1, 2, 3
TOKENS = 4
ABSOLUTE_DIRECTIONS = 16  # directions of the first step and of a reset (the paper's N)
ABSOLUTE_UNIT = DIRECTIONS // ABSOLUTE_DIRECTIONS
INITIAL_SPACING = DIRECTIONS // 32  # pi/16: the paper's phi = pi/8 over M = 3 offsets
MIN_SPACING = INITIAL_SPACING // 8  # phi / 8
MAX_SPACING = DIRECTIONS // 2  # phi = 2 pi
# Reset when the best offset misses the contour by more than this many pixels
# (and the best absolute direction misses it by less). The paper's threshold,
# 2 T sin(phi / (4 (M - 1))), is under one pixel for short steps, below the
# rounding error of integer vertices; hence the one-pixel floor.
RESET_FRACTION = 2 * np.sin(np.pi / 64)
RESET_FLOOR = 1.0
WINDOW_STEPS = 3  # how far ahead (in steps) a step may land on the contour
# Directions the offset adaptation averages over. The paper averages all since
# the last reset; a window keeps each step O(1) on long straight runs.
HISTORY = 16
MIN_STEP, MAX_STEP = 2, 65  # step lengths the stream can hold (uniform code)
GAMMA_BITS = 24  # moves + 1 < 2**24, so no uniform alphabet passes constriction's 2**24


def _wrap(angle: int) -> int:
    """An angle difference in direction units, wrapped to [-DIRECTIONS/2, DIRECTIONS/2)."""
    return (angle + DIRECTIONS // 2) % DIRECTIONS - DIRECTIONS // 2


class ChainState:
    """Direction and adaptive angular spacing of a chain, in integers."""

    def __init__(self, first_direction: int) -> None:
        self.direction = first_direction * ABSOLUTE_UNIT
        self._reset()

    def _reset(self) -> None:
        self.spacing = INITIAL_SPACING
        self.history = [self.direction]
        self.just_doubled = False

    def _remember(self, direction: int) -> None:
        self.history.append(direction)
        if len(self.history) > HISTORY:
            del self.history[0]

    def candidates(self) -> tuple[int, int, int]:
        """Directions of STRAIGHT, LEFT, RIGHT."""
        d, s = self.direction, self.spacing
        return d, (d - s) % DIRECTIONS, (d + s) % DIRECTIONS

    def step(self, token: int, absolute: int = 0) -> int:
        """Apply one token (and the absolute direction of an ESCAPE); the new direction."""
        if token == ESCAPE:
            self.direction = absolute * ABSOLUTE_UNIT
            self._reset()
            return self.direction
        self.direction = self.candidates()[token]
        self._remember(self.direction)
        if self.just_doubled:
            self.just_doubled = False
        elif len(self.history) >= 2:
            # mean deviation of the recent directions (since the last reset or
            # widening, at most HISTORY) from the current one against the spacing
            total = sum(_wrap(a - self.direction) for a in self.history)
            n = len(self.history)
            if 2 * abs(total) < self.spacing * n:
                self.spacing = max(self.spacing // 2, MIN_SPACING)
            elif abs(total) > self.spacing * n and self.spacing < MAX_SPACING:
                self.spacing = min(self.spacing * 2, MAX_SPACING)
                self.history = []
                self.just_doubled = True
        return self.direction


def move_to_front(tokens: list[int]) -> list[int]:
    """Ranks of the tokens in a recency list (initially STRAIGHT, LEFT, RIGHT, ESCAPE)."""
    order = [STRAIGHT, LEFT, RIGHT, ESCAPE]
    ranks = []
    for token in tokens:
        rank = order.index(token)
        ranks.append(rank)
        order.insert(0, order.pop(rank))
    return ranks


class MoveToFront:
    """Incremental inverse of `move_to_front`, for the decoder."""

    def __init__(self) -> None:
        self.order = [STRAIGHT, LEFT, RIGHT, ESCAPE]

    def token(self, rank: int) -> int:
        token = self.order.pop(rank)
        self.order.insert(0, token)
        return token


def chain_vertices(y0: int, x0: int, length: int, first_direction: int,
                   moves: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Polygon vertices (start first) of a chain: the first step, then one per
    move (token, absolute direction of an ESCAPE or 0)."""
    dys, dxs = step_table(length)
    state = ChainState(first_direction)
    ys, xs = [y0], [x0]
    y, x = y0 + dys[state.direction], x0 + dxs[state.direction]
    ys.append(y)
    xs.append(x)
    for token, absolute in moves:
        direction = state.step(token, absolute)
        y += dys[direction]
        x += dxs[direction]
        ys.append(y)
        xs.append(x)
    return np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)


def _nearest(y: int, x: int, dys: list[int], dxs: list[int], directions: list[int],
             wy: np.ndarray, wx: np.ndarray) -> tuple[int, float, int]:
    """Among the steps from (y, x) in `directions`, the one ending nearest to
    the contour points (wy, wx): (index into directions, distance, point index)."""
    ey = np.asarray([y + dys[d] for d in directions])[:, None]
    ex = np.asarray([x + dxs[d] for d in directions])[:, None]
    d2 = (wy[None, :] - ey) ** 2 + (wx[None, :] - ex) ** 2
    point = d2.argmin(axis=1)
    dist2 = d2[np.arange(len(directions)), point]
    best = int(dist2.argmin())
    return best, float(dist2[best]) ** 0.5, int(point[best])


def trace_chain(cy: np.ndarray, cx: np.ndarray, length: int
                ) -> tuple[int, list[tuple[int, int]]]:
    """C* chain of a closed contour (corners cy, cx of unit edges, start first).

    Returns (first absolute direction, moves), or (-1, []) when the whole
    contour lies within one step of its start. The chain starts at the
    contour's first corner. Each step takes the candidate direction whose end
    lies nearest to the contour ahead (the next WINDOW_STEPS steps' worth of
    contour points); the contour points up to that nearest one count as
    covered. The chain ends when the rest of the contour is within `length`
    of its last vertex: the closing edge covers the rest."""
    dys, dxs = step_table(length)
    cy = np.append(cy, cy[0])  # the contour ends where it starts
    cx = np.append(cx, cx[0])
    absolute_dirs = [k * ABSOLUTE_UNIT for k in range(ABSOLUTE_DIRECTIONS)]
    reset_error = max(RESET_FRACTION * length, RESET_FLOOR)
    window = WINDOW_STEPS * length + 4
    y, x = int(cy[0]), int(cx[0])
    cursor, state, first, moves = 0, None, -1, []
    while cursor < cy.size:
        if cy.size - cursor <= window:
            rest = (cy[cursor:] - y) ** 2 + (cx[cursor:] - x) ** 2
            if rest.max() < length * length:
                break
        wy, wx = cy[cursor:cursor + window], cx[cursor:cursor + window]
        if state is None:
            first, _, point = _nearest(y, x, dys, dxs, absolute_dirs, wy, wx)
            state = ChainState(first)
        else:
            token, error, point = _nearest(y, x, dys, dxs, list(state.candidates()), wy, wx)
            absolute = 0
            if error > reset_error:
                jump, jump_error, jump_point = _nearest(y, x, dys, dxs, absolute_dirs, wy, wx)
                if jump_error < error:
                    token, absolute, point = ESCAPE, jump, jump_point
            state.step(token, absolute)
            moves.append((token, absolute))
        cursor += point + 1
        y += dys[state.direction]
        x += dxs[state.direction]
    return first, moves


@dataclass
class CstarChain:
    """A coded chain: start corner, step length, first direction, moves."""

    y0: int
    x0: int
    step: int
    first: int
    moves: list[tuple[int, int]]

    def vertices(self) -> tuple[np.ndarray, np.ndarray]:
        return chain_vertices(self.y0, self.x0, self.step, self.first, self.moves)


def _nearest_absolute(direction: int) -> int:
    return (direction + ABSOLUTE_UNIT // 2) // ABSOLUTE_UNIT % ABSOLUTE_DIRECTIONS


class CstarCoder:
    """Adaptive models shared by the C* chains of one stream: move-to-front
    ranks in the context of the two previous tokens, and reset directions
    relative to the direction they replace."""

    def __init__(self) -> None:
        self.ranks = AdaptiveModel(TOKENS * TOKENS, TOKENS, width=ABSOLUTE_DIRECTIONS)
        self.jumps = AdaptiveModel(1, ABSOLUTE_DIRECTIONS)

    def _sequence(self, chain: CstarChain) -> tuple[list[int], list[list[int]]]:
        """Symbols and probability rows (all ABSOLUTE_DIRECTIONS wide), updating the models."""
        symbols = [chain.first]
        rows = [uniform_rows(ABSOLUTE_DIRECTIONS, ABSOLUTE_DIRECTIONS)]
        state = ChainState(chain.first)
        ranks = move_to_front([t for t, _ in chain.moves])
        context = 0
        for rank, (token, absolute) in zip(ranks, chain.moves, strict=True):
            symbols.append(rank)
            rows.append(self.ranks.row(context))
            self.ranks.update(context, rank)
            if token == ESCAPE:
                jump = (absolute - _nearest_absolute(state.direction)) % ABSOLUTE_DIRECTIONS
                symbols.append(jump)
                rows.append(self.jumps.row(0))
                self.jumps.update(0, jump)
            state.step(token, absolute)
            context = (context * TOKENS + token) % (TOKENS * TOKENS)
        return symbols, rows

    @staticmethod
    def _header_bits(chain: CstarChain, height: int, width: int) -> float:
        moves = len(chain.moves) + 1
        return (math.log2((height + 1) * (width + 1) * (MAX_STEP - MIN_STEP + 1))
                + math.log2(GAMMA_BITS) + moves.bit_length() - 1)

    def bits(self, chain: CstarChain, height: int, width: int) -> float:
        """Code length of the chain under (and updating) these models."""
        symbols, rows = self._sequence(chain)
        return self._header_bits(chain, height, width) + sum(
            math.log2(sum(row) / row[s]) for s, row in zip(symbols, rows, strict=True))

    def write(self, writer: Writer, chain: CstarChain, height: int, width: int) -> None:
        writer.uniform(chain.y0, height + 1)
        writer.uniform(chain.x0, width + 1)
        writer.uniform(chain.step - MIN_STEP, MAX_STEP - MIN_STEP + 1)
        writer.gamma(len(chain.moves) + 1, GAMMA_BITS)
        writer.symbols(*self._sequence(chain))

    def read(self, reader: Reader, height: int, width: int, budget: list[int]
             ) -> tuple[np.ndarray, np.ndarray]:
        """Polygon vertices of the next chain; budget[0] (steps left) shrinks."""
        y0, x0 = reader.uniform(height + 1), reader.uniform(width + 1)
        step = MIN_STEP + reader.uniform(MAX_STEP - MIN_STEP + 1)
        count = reader.gamma(GAMMA_BITS) - 1
        budget[0] -= count
        if budget[0] < 0:
            raise ContourFormatError(f"corrupt contour stream ({count} chain steps)")
        first = reader.symbol(uniform_rows(ABSOLUTE_DIRECTIONS, ABSOLUTE_DIRECTIONS),
                              ABSOLUTE_DIRECTIONS)
        dys, dxs = step_table(step)
        state, mtf, context = ChainState(first), MoveToFront(), 0
        y, x = y0 + dys[state.direction], x0 + dxs[state.direction]
        ys, xs = [y0, y], [x0, x]
        # valid chains stay within a step of the image (every vertex lands near
        # a contour point inside it): a vertex beyond that ends a corrupt chain
        low, high_y, high_x = -MAX_STEP, height + MAX_STEP, width + MAX_STEP
        for _ in range(count):
            rank = reader.symbol(self.ranks.row(context), TOKENS)
            self.ranks.update(context, rank)
            token = mtf.token(rank)
            absolute = 0
            if token == ESCAPE:
                jump = reader.symbol(self.jumps.row(0), ABSOLUTE_DIRECTIONS)
                self.jumps.update(0, jump)
                absolute = (jump + _nearest_absolute(state.direction)) % ABSOLUTE_DIRECTIONS
            direction = state.step(token, absolute)
            context = (context * TOKENS + token) % (TOKENS * TOKENS)
            y += dys[direction]
            x += dxs[direction]
            if not (low <= y <= high_y and low <= x <= high_x):
                raise ContourFormatError("corrupt contour stream (C* chain leaves the image)")
            ys.append(y)
            xs.append(x)
        return np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)

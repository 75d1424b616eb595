"""Range coding of the latent grids with the exact integer ARM (constriction).

One range-coder stream per grid. Symbols are x - low for the alphabet
[low, high] (from the header); each symbol's distribution is a window of a
precomputed Laplace table row (`pmf_table`), selected by the integer ARM's
outputs. The decoder goes wavefront by wavefront (see `canvas`): all latents of
one anti-diagonal, in every grid at once, get their contexts with one fancy
index, one integer ARM evaluation and one table gather, then one constriction
call per grid. Torch-free.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import MoricFormatError
from .arm_integer import IntegerArm
from .canvas import Canvas
from .pmf_table import build_table, table_indices, window_starts

CHUNK = 1 << 15  # latents per vectorised step when encoding
# constriction is a compiled extension: its submodules are attributes, not importable
Categorical = constriction.stream.model.Categorical
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder


def _probabilities(arm: IntegerArm, flat_canvas: np.ndarray, positions: np.ndarray,
                   offsets: np.ndarray, low: int, high: int, table: np.ndarray) -> np.ndarray:
    """(n, alphabet) window of the pmf table for the latents at `positions`."""
    contexts = flat_canvas[positions[:, None] + offsets[None, :]]
    mean, log_scale = arm(contexts)
    m, f, j = table_indices(mean, log_scale, low, high)
    alphabet = high - low + 1
    starts = window_starts(m, f, j, low, alphabet)
    return table.reshape(-1)[starts[:, None] + np.arange(alphabet)]


def latent_bits(arm: IntegerArm, flat_canvas: np.ndarray, canvas: Canvas, low: int,
                high: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Information content (bits) of each latent under the integer ARM and the
    table, in `canvas.latent_index` order (0 for latents not in `keep`): what
    the range coder spends on it, give or take its few bits of termination."""
    flat_canvas = np.asarray(flat_canvas, dtype=np.float64)
    positions = canvas.latent_index
    bits = np.zeros(positions.size)
    if high == low:
        return bits
    table = build_table(high - low + 1)
    coded = np.arange(positions.size) if keep is None else np.flatnonzero(keep[positions])
    for s in range(0, coded.size, CHUNK):
        index = coded[s:s + CHUNK]
        p = positions[index]
        probs = _probabilities(arm, flat_canvas, p, canvas.offsets, low, high, table)
        symbols = flat_canvas[p].astype(np.int64) - low
        bits[index] = -np.log2(probs[np.arange(p.size), symbols] / probs.sum(axis=1))
    return bits


def encode_latents(arm: IntegerArm, flat_canvas: np.ndarray, canvas: Canvas, low: int,
                   high: int, keep: np.ndarray | None = None) -> list[bytes]:
    """One stream per grid; flat_canvas holds the integer latents (float64 or int).
    keep: (numel,) bool, the latents that are coded (the others are zero)."""
    flat_canvas = np.asarray(flat_canvas, dtype=np.float64)
    alphabet = high - low + 1
    positions, _, grid_of = canvas.wave_order(keep)
    if alphabet == 1:
        return [b""] * canvas.num_grids
    table = build_table(alphabet)
    family = Categorical(perfect=False)
    streams = []
    for g in range(canvas.num_grids):
        encoder = RangeEncoder()
        grid_positions = positions[grid_of == g]
        for s in range(0, grid_positions.size, CHUNK):
            p = grid_positions[s:s + CHUNK]
            probs = _probabilities(arm, flat_canvas, p, canvas.offsets, low, high, table)
            symbols = (flat_canvas[p] - low).astype(np.int32)
            encoder.encode(symbols, family, probs)
        streams.append(encoder.get_compressed().astype("<u4", copy=False).tobytes())
    return streams


def _words(stream: bytes) -> np.ndarray:
    if len(stream) % 4:
        raise MoricFormatError("corrupt MoRIC latent stream (length not a multiple of 4)")
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32)  # little endian words


def decode_latents(arm: IntegerArm, streams: list[bytes], canvas: Canvas, low: int,
                   high: int, keep: np.ndarray | None = None) -> np.ndarray:
    """The flat canvas of integer latents (float64), margins (and latents not
    in `keep`) zero."""
    flat_canvas = np.zeros(canvas.numel, dtype=np.float64)
    alphabet = high - low + 1
    if alphabet == 1:
        if any(streams):
            raise MoricFormatError("corrupt MoRIC file (data in an empty latent stream)")
        index = canvas.latent_index
        flat_canvas[index if keep is None else index[keep[index]]] = low
        return flat_canvas
    table = build_table(alphabet).reshape(-1)
    family = Categorical(perfect=False)
    decoders = [RangeDecoder(_words(s)) for s in streams]
    positions, wave_starts, grid_of = canvas.wave_order(keep)
    # segments of consecutive positions of one grid within one wave
    key = np.searchsorted(wave_starts, np.arange(positions.size), side="right") * 8 + grid_of
    cuts = np.flatnonzero(np.diff(key)) + 1
    seg_starts = np.concatenate([[0], cuts]).tolist()
    seg_ends = np.concatenate([cuts, [positions.size]]).tolist()
    seg_grid = grid_of[seg_starts].tolist() if positions.size else []
    offsets = canvas.offsets[None, :]
    symbol_range = np.arange(alphabet)
    segment = 0
    try:
        for w in range(len(wave_starts) - 1):
            a, b = int(wave_starts[w]), int(wave_starts[w + 1])
            p = positions[a:b]
            mean, log_scale = arm(flat_canvas[p[:, None] + offsets])
            m, f, j = table_indices(mean, log_scale, low, high)
            probs = table[window_starts(m, f, j, low, alphabet)[:, None] + symbol_range]
            symbols = np.empty(b - a, dtype=np.int64)
            while segment < len(seg_starts) and seg_ends[segment] <= b:
                sa, sb = seg_starts[segment] - a, seg_ends[segment] - a
                symbols[sa:sb] = decoders[seg_grid[segment]].decode(family, probs[sa:sb])
                segment += 1
            flat_canvas[p] = symbols + low
    except (ValueError, AssertionError, RuntimeError, OverflowError) as exc:
        raise MoricFormatError(f"corrupt MoRIC latent stream ({exc})") from None
    for decoder in decoders:
        if not decoder.maybe_exhausted():
            raise MoricFormatError("corrupt MoRIC latent stream (trailing data)")
    return flat_canvas

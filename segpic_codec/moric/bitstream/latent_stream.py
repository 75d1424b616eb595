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
from .pmf_table import build_table, window_starts, windows

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
    return windows(table)[window_starts(mean, log_scale, low, high)]


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
    table = windows(build_table(alphabet))
    family = Categorical(perfect=False)
    decoders = [RangeDecoder(_words(s)) for s in streams]
    plan = canvas.wave_plan(keep)
    positions, offsets = plan.positions, canvas.offsets[None, :]
    # Python ints: this loop runs once per wave (thousands), and its fixed
    # costs per numpy call are most of its time
    wave_starts = plan.wave_starts.tolist()
    segment_starts = plan.segment_starts.tolist()
    segment_decoders = [decoders[g] for g in plan.segment_grids.tolist()]
    segment = 0
    try:
        for a, b in zip(wave_starts[:-1], wave_starts[1:], strict=True):
            if a == b:
                continue
            p = positions[a:b]
            mean, log_scale = arm(flat_canvas[p[:, None] + offsets])
            probs = table[window_starts(mean, log_scale, low, high)]
            pieces = []
            while segment_starts[segment] < b:
                sa, sb = segment_starts[segment] - a, segment_starts[segment + 1] - a
                pieces.append(segment_decoders[segment].decode(family, probs[sa:sb]))
                segment += 1
            symbols = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            symbols += low
            flat_canvas[p] = symbols
    except (ValueError, AssertionError, RuntimeError, OverflowError) as exc:
        raise MoricFormatError(f"corrupt MoRIC latent stream ({exc})") from None
    for decoder in decoders:
        if not decoder.maybe_exhausted():
            raise MoricFormatError("corrupt MoRIC latent stream (trailing data)")
    return flat_canvas

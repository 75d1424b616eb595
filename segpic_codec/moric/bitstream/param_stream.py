"""The parameter stream, range coded: the networks' quantised integers under
one zero-mean quantised Laplace per (module, kind) group (constriction).

A group's model is its scale index s (in the header): scale = 2**(s / 8 - 4).
In the stream, per group, the bit length k of its largest |value| (uniform over
0..MAX_VALUE_BITS), then every value, one vectorised call, over the alphabet
[-(2**k - 1), 2**k - 1]. On the networks of eight 3k-step Kodak encodes this
takes 2.4 to 3.7 % fewer bits than the best signed exp-Golomb code per group
(`expgolomb`, which files written before it still use; measured with
`scripts/moric_recode_parameters.py`), and one scale per group beat one per
tensor once each scale's header byte was counted.

Probabilities are built from basic IEEE operations only (`pmf_table`'s
deterministic exp), so every machine builds the same bits. Torch-free.
"""

from __future__ import annotations

import math
from functools import lru_cache

import constriction
import numpy as np

from ..errors import MoricFormatError
from ..file_format import NUM_SCALES
from .expgolomb import BitReader
from .pmf_table import exp_deterministic

MAX_VALUE_BITS = 15  # |value| < 2**15: the encoder's step search keeps to it
SCALE_STEPS_PER_OCTAVE = 8
SCALE_MIN_LOG2 = -4
_LN2 = 0.6931471805599453
# a floor far below the coder's own leak (constriction gives every symbol at
# least 2**-24) that keeps every window strictly positive
PARAMETER_PROBABILITY_FLOOR = 2.0**-40

Categorical = constriction.stream.model.Categorical
Uniform = constriction.stream.model.Uniform
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder


def laplace_scale(index: int) -> float:
    """2**(index / 8 - 4), from basic operations only."""
    octave, step = divmod(index, SCALE_STEPS_PER_OCTAVE)
    # 2**(step / 8) = 2 * exp(-(8 - step) / 8 * ln 2), the exp taken of x <= 0
    root = 2.0 * float(exp_deterministic(np.float64(-(SCALE_STEPS_PER_OCTAVE - step)
                                                    / SCALE_STEPS_PER_OCTAVE * _LN2)))
    return math.ldexp(root, octave + SCALE_MIN_LOG2)


@lru_cache(maxsize=64)
def group_pmf(index: int, value_bits: int) -> np.ndarray:
    """Unnormalised P(x) for x in [-(2**k - 1), 2**k - 1], k = value_bits."""
    bound = (1 << value_bits) - 1
    x = np.abs(np.arange(-bound, bound + 1, dtype=np.float64))
    scale = laplace_scale(index)
    # P(|x|) of a zero-mean Laplace: 1 - exp(-1/(2s)) at 0, else the two tails' difference
    upper = exp_deterministic(-(x + 0.5) / scale)
    lower = np.where(x == 0, 1.0, exp_deterministic(-np.maximum(x - 0.5, 0.0) / scale))
    pmf = np.where(x == 0, 1.0 - upper, 0.5 * (lower - upper))
    pmf = np.maximum(pmf, PARAMETER_PROBABILITY_FLOOR)
    pmf.setflags(write=False)
    return pmf


def value_bits(values: np.ndarray) -> int:
    """k: the bit length of the largest |value|."""
    return int(np.max(np.abs(values))).bit_length() if values.size else 0


def information_bits(values: np.ndarray, index: int) -> np.ndarray:
    """Bits of each value under scale `index` (about what the coder spends)."""
    k = value_bits(values)
    if k == 0:
        return np.zeros(values.size)
    pmf = group_pmf(index, k)
    return -np.log2(pmf[values + (1 << k) - 1] / pmf.sum())


def best_scale(values: np.ndarray) -> tuple[int, float]:
    """(scale index, bits) of the cheapest model for a group, its k included:
    the indices around the maximum-likelihood scale (mean |value|)."""
    values = np.asarray(values, dtype=np.int64)
    header_bits = math.log2(MAX_VALUE_BITS + 1)
    if value_bits(values) == 0:
        return 0, header_bits
    if value_bits(values) > MAX_VALUE_BITS:
        return 0, math.inf
    centre = (math.log2(max(float(np.mean(np.abs(values))), 2.0**SCALE_MIN_LOG2))
              - SCALE_MIN_LOG2) * SCALE_STEPS_PER_OCTAVE
    candidates = range(max(0, round(centre) - 6), min(NUM_SCALES, round(centre) + 7))
    bits = {s: float(information_bits(values, s).sum()) for s in candidates}
    best = min(bits, key=lambda s: (bits[s], s))
    return best, bits[best] + header_bits


def encode_groups(groups: list[tuple[np.ndarray, int]]) -> bytes:
    """[(integers, scale index)] in stream order -> the stream (whole words)."""
    encoder = RangeEncoder()
    for values, index in groups:
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0:
            continue
        k = value_bits(values)
        if k > MAX_VALUE_BITS or not 0 <= index < NUM_SCALES:
            raise ValueError(f"parameter group out of range (k={k}, scale index {index})")
        encoder.encode(np.array([k], dtype=np.int32), Uniform(MAX_VALUE_BITS + 1))
        if k:
            model = Categorical(group_pmf(index, k), perfect=False)
            encoder.encode((values + (1 << k) - 1).astype(np.int32), model)
    return encoder.get_compressed().astype("<u4", copy=False).tobytes()


def decode_groups(data: bytes, groups: list[tuple[int, int]]) -> list[np.ndarray]:
    """[(count, scale index)] in stream order -> the integers of each group;
    MoricFormatError on a corrupt stream."""
    if len(data) % 4:
        raise MoricFormatError("corrupt MoRIC parameter stream (length not a multiple of 4)")
    decoder = RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    out = []
    try:
        for count, index in groups:
            if count == 0:
                out.append(np.zeros(0, dtype=np.int64))
                continue
            k = int(decoder.decode(Uniform(MAX_VALUE_BITS + 1), 1)[0])
            if k == 0:
                out.append(np.zeros(count, dtype=np.int64))
                continue
            model = Categorical(group_pmf(index, k), perfect=False)
            out.append(decoder.decode(model, count).astype(np.int64) - ((1 << k) - 1))
    except (ValueError, AssertionError, RuntimeError, OverflowError) as exc:
        raise MoricFormatError(f"corrupt MoRIC parameter stream ({exc})") from None
    if not decoder.maybe_exhausted():
        raise MoricFormatError("corrupt MoRIC parameter stream (trailing data)")
    return out


def read_groups(data: bytes, groups: list[tuple[int, int]], range_coded: bool
                ) -> list[np.ndarray]:
    """[(count, model)] in stream order -> the integers of each group, from a
    range-coded stream (model: scale index) or from the exp-Golomb stream of an
    older file (model: order); MoricFormatError on a corrupt stream."""
    if range_coded:
        return decode_groups(data, groups)
    reader = BitReader(data)
    out = [reader.read_signed(count, order) for count, order in groups]
    reader.check_end()
    return out

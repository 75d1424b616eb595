"""Entropy coding for the contour stream: one constriction range coder, fed
with uniform values and adaptive context models. Encoder side: one encode call
per symbol sequence; decoder side: symbol by symbol, since the adaptive
probabilities depend on what was decoded. Corrupt input raises
`ContourFormatError`; the reader refuses to decode more than a few range-coder
states' worth of information past the end of its data, so garbage cannot keep
it busy (it would otherwise read implicit zero words forever)."""

from __future__ import annotations

import math

import constriction
import numpy as np

from ..errors import MoricFormatError

# constriction is a compiled extension: its submodules are attributes, not importable
_Categorical = constriction.stream.model.Categorical
_Uniform = constriction.stream.model.Uniform
_RangeEncoder = constriction.stream.queue.RangeEncoder
_RangeDecoder = constriction.stream.queue.RangeDecoder

COUNT_LIMIT = 1 << 13  # halve a context's counts past this total: keeps them adaptive
# Information (bits) a valid stream can still hold once the decoder has read its
# last word: the range coder's 64-bit state, with margin for rounding.
EXHAUSTED_SLACK_BITS = 160.0


def _crc8_table() -> bytes:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc << 1) ^ 0x07 if crc & 0x80 else crc << 1
        table.append(crc & 0xFF)
    return bytes(table)


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial x^8 + x^2 + x + 1, initial 0): catches every error
    burst of up to 8 bits, so every corrupted byte."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


class ContourFormatError(MoricFormatError):
    """A contour stream that is not valid (corrupt, truncated, or hostile)."""


class AdaptiveModel:
    """Per-context symbol counts (Krichevsky-Trofimov: start at 1, add 2),
    halved past COUNT_LIMIT. Integer counts, so encoder and decoder hand
    constriction the same float64 rows."""

    def __init__(self, contexts: int, alphabet: int, width: int | None = None) -> None:
        self.alphabet = alphabet
        self.width = width or alphabet
        self.counts = [[1] * alphabet for _ in range(contexts)]
        self.totals = [alphabet] * contexts

    def row(self, context: int) -> list[int]:
        return self.counts[context] + [0] * (self.width - self.alphabet)

    def update(self, context: int, symbol: int) -> None:
        counts = self.counts[context]
        counts[symbol] += 2
        self.totals[context] += 2
        if self.totals[context] > COUNT_LIMIT:
            counts[:] = [(c + 1) // 2 for c in counts]
            self.totals[context] = sum(counts)

    def bits(self, context: int, symbol: int) -> float:
        return -math.log2(self.counts[context][symbol] / self.totals[context])


def uniform_rows(size: int, width: int) -> list[int]:
    return [1] * size + [0] * (width - size)


class Writer:
    def __init__(self) -> None:
        self._encoder = _RangeEncoder()
        self._family = _Categorical(perfect=False)

    def uniform(self, value: int, size: int) -> None:
        """value in [0, size); nothing is written for size 1."""
        if size > 1:
            self._encoder.encode(int(value), _Uniform(size))

    def gamma(self, value: int, max_bits: int) -> None:
        """value >= 1: its bit length (uniform over 1..max_bits), then the
        bits below the top one (uniform)."""
        length = value.bit_length()
        self.uniform(length - 1, max_bits)
        if length > 1:
            self.uniform(value - (1 << (length - 1)), 1 << (length - 1))

    def symbols(self, symbols: list[int], rows: list[list[int]]) -> None:
        """A sequence with one probability row (unnormalised counts) per symbol."""
        if symbols:
            self._encoder.encode(np.asarray(symbols, dtype=np.int32), self._family,
                                 np.asarray(rows, dtype=np.float64))

    def words(self) -> np.ndarray:
        return self._encoder.get_compressed()


class Reader:
    def __init__(self, words: np.ndarray) -> None:
        self._decoder = _RangeDecoder(words)
        self._family = _Categorical(perfect=False)
        self._bits_past_end = 0.0
        self.spent = 0.0  # information read so far (bits), for per-chain accounting

    def _spend(self, bits: float) -> None:
        self.spent += bits
        if self._decoder.maybe_exhausted():
            self._bits_past_end += bits
            if self._bits_past_end > EXHAUSTED_SLACK_BITS:
                raise ContourFormatError("corrupt contour stream (reads past its end)")

    def uniform(self, size: int) -> int:
        if size <= 1:
            return 0
        try:
            value = int(self._decoder.decode(_Uniform(size)))
        except (AssertionError, ValueError, RuntimeError, OverflowError) as exc:
            raise ContourFormatError(f"corrupt contour stream ({exc})") from None
        if value >= size:
            raise ContourFormatError("corrupt contour stream (value out of range)")
        self._spend(math.log2(size))
        return value

    def gamma(self, max_bits: int) -> int:
        length = self.uniform(max_bits) + 1
        if length == 1:
            return 1
        return (1 << (length - 1)) + self.uniform(1 << (length - 1))

    def symbol(self, row: list[int], alphabet: int) -> int:
        """One symbol under unnormalised counts `row`; must be below `alphabet`."""
        try:
            value = int(self._decoder.decode(self._family, np.asarray([row], dtype=np.float64))[0])
        except (AssertionError, ValueError, RuntimeError, OverflowError) as exc:
            raise ContourFormatError(f"corrupt contour stream ({exc})") from None
        if value >= alphabet or row[value] == 0:
            raise ContourFormatError("corrupt contour stream (symbol out of range)")
        self._spend(-math.log2(row[value] / sum(row)))
        return value

    def finished(self) -> bool:
        return bool(self._decoder.maybe_exhausted())

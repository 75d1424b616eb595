"""Signed exponential-Golomb codes: the network parameters of MoRIC files
written before range-coded parameters (`param_stream`), which still decode.
The writer is kept for tests that make such streams. Torch-free."""

from __future__ import annotations

import numpy as np

from ..errors import MoricFormatError

MAX_PREFIX = 40  # longest run of leading zeros accepted: values below 2**40


def _unsigned(values: np.ndarray) -> np.ndarray:
    """0, 1, -1, 2, -2, ... -> 0, 1, 2, 3, 4, ..."""
    v = np.asarray(values, dtype=np.int64)
    return np.where(v > 0, 2 * v - 1, -2 * v)


def code_length(values: np.ndarray, order: int) -> int:
    """Total bits of `values` coded with signed exp-Golomb of this order."""
    u = _unsigned(values) + (1 << order)
    bit_length = np.floor(np.log2(u.astype(np.float64))).astype(np.int64) + 1
    # the float log2 can be one off right at powers of two; correct both ways
    bit_length += (u >> bit_length) > 0
    bit_length -= (u >> np.maximum(bit_length - 1, 0)) == 0
    return int(np.sum(2 * bit_length - 1 - order))


class BitWriter:
    def __init__(self) -> None:
        self._bits: list[str] = []

    def write_signed(self, values: np.ndarray, order: int) -> None:
        for u in _unsigned(values).tolist():
            x = u + (1 << order)
            n = x.bit_length()
            self._bits.append("0" * (n - 1 - order) + format(x, "b"))

    def getvalue(self) -> bytes:
        bits = "".join(self._bits)
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


class BitReader:
    def __init__(self, data: bytes):
        self._bits = "".join(format(b, "08b") for b in data)
        self._pos = 0

    def read_signed(self, count: int, order: int) -> np.ndarray:
        bits, pos, out = self._bits, self._pos, []
        for _ in range(count):
            one = bits.find("1", pos, pos + MAX_PREFIX + 1)
            if one < 0:
                raise MoricFormatError("corrupt MoRIC parameter stream (bad exp-Golomb code)")
            zeros = one - pos
            end = one + zeros + order + 1
            if end > len(bits):
                raise MoricFormatError("truncated MoRIC parameter stream")
            u = int(bits[one:end], 2) - (1 << order)
            out.append((u + 1) // 2 if u % 2 else -(u // 2))
            pos = end
        self._pos = pos
        return np.array(out, dtype=np.int64)

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._pos

    def check_end(self) -> None:
        """Only zero padding (< 8 bits) may follow the last value."""
        rest = self._bits[self._pos:]
        if len(rest) >= 8 or "1" in rest:
            raise MoricFormatError("corrupt MoRIC parameter stream (trailing data)")

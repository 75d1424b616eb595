"""Range coding of whole symbol arrays with constriction.

Two model families cover every stream of a .spic file:
- `encode_gaussian`/`decode_gaussian`: zero-mean quantized Gaussians with one
  standard deviation per symbol (the y slices; the mean is subtracted before
  quantization, so the model only depends on the tabulated scale).
- `encode_factorized`/`decode_factorized`: one fixed categorical pmf per channel
  (z and the prototype latents).

Each call codes one array into one independent stream; nothing loops over
symbols in Python (the factorized coder loops over channels only).
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import SegpicError

# Symbols of y are clamped to this range before coding; the encoder reconstructs
# from the clamped value, so clamping never desynchronises the decoder.
GAUSSIAN_RANGE = 4096
_GAUSSIAN_FAMILY = constriction.stream.model.QuantizedGaussian(-GAUSSIAN_RANGE, GAUSSIAN_RANGE)


class StreamError(SegpicError, ValueError):
    """A coded stream could not be decoded."""


def _to_bytes(words: np.ndarray) -> bytes:
    return words.astype("<u4", copy=False).tobytes()


def _from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise StreamError("coded stream length is not a multiple of 4 bytes")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def encode_gaussian(symbols: np.ndarray, stds: np.ndarray) -> bytes:
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
    stds = np.ascontiguousarray(stds, dtype=np.float64).reshape(-1)
    if symbols.size == 0:
        return b""
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, _GAUSSIAN_FAMILY, np.zeros_like(stds), stds)
    return _to_bytes(encoder.get_compressed())


def decode_gaussian(data: bytes, stds: np.ndarray) -> np.ndarray:
    stds = np.ascontiguousarray(stds, dtype=np.float64).reshape(-1)
    if stds.size == 0:
        return np.zeros(0, dtype=np.int32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(_from_bytes(data))
        return decoder.decode(_GAUSSIAN_FAMILY, np.zeros_like(stds), stds)
    except StreamError:
        raise
    except Exception as exc:  # constriction reports corrupt data as various errors
        raise StreamError(f"corrupt Gaussian stream: {exc}") from None


def _channel_models(tables: np.ndarray) -> list:
    return [constriction.stream.model.Categorical(np.ascontiguousarray(row, dtype=np.float64),
                                                  perfect=False) for row in tables]


def encode_factorized(symbols: np.ndarray, tables: np.ndarray) -> bytes:
    """symbols (n, C) in [0, K); tables (C, K): one fixed pmf per channel.

    The stream holds channel 0's n symbols, then channel 1's, and so on: each
    channel is a run of i.i.d. symbols under one concrete model, so nothing has
    to be materialised per symbol (a per-symbol probability table would take
    n * C * K * 8 bytes, about 1.5 GB for z of a 64 MP image)."""
    symbols = np.asarray(symbols)
    if symbols.size == 0:
        return b""
    encoder = constriction.stream.queue.RangeEncoder()
    for c, model in enumerate(_channel_models(tables)):
        encoder.encode(np.ascontiguousarray(symbols[:, c], dtype=np.int32), model)
    return _to_bytes(encoder.get_compressed())


def decode_factorized(data: bytes, tables: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `encode_factorized` -> (n, C) int32."""
    channels = tables.shape[0]
    if n == 0:
        return np.zeros((0, channels), dtype=np.int32)
    out = np.empty((n, channels), dtype=np.int32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(_from_bytes(data))
        for c, model in enumerate(_channel_models(tables)):
            out[:, c] = decoder.decode(model, n)
    except StreamError:
        raise
    except Exception as exc:  # constriction reports corrupt data as various errors
        raise StreamError(f"corrupt factorized stream: {exc}") from None
    return out

"""Range coding of whole symbol arrays with constriction.

Two model families cover every stream of a .spic file:
- `encode_gaussian`/`decode_gaussian`: zero-mean quantized Gaussians with one
  standard deviation per symbol (the y slices; the mean is subtracted before
  quantization, so the model only depends on the tabulated scale).
- `encode_categorical`/`decode_categorical`: one probability row per symbol
  (z and the prototype latents, rows taken from a per-channel pmf table).

Each call codes one array into one independent stream; nothing loops over
symbols in Python.
"""

from __future__ import annotations

import constriction
import numpy as np

from .errors import SegpicError

# Symbols of y are clamped to this range before coding; the encoder reconstructs
# from the clamped value, so clamping never desynchronises the decoder.
GAUSSIAN_RANGE = 4096
_GAUSSIAN_FAMILY = constriction.stream.model.QuantizedGaussian(-GAUSSIAN_RANGE, GAUSSIAN_RANGE)
_CATEGORICAL_FAMILY = constriction.stream.model.Categorical(perfect=False)


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


def encode_categorical(symbols: np.ndarray, probabilities: np.ndarray) -> bytes:
    """symbols in [0, K); probabilities (n, K)."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
    if symbols.size == 0:
        return b""
    probs = np.ascontiguousarray(probabilities, dtype=np.float64)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, _CATEGORICAL_FAMILY, probs)
    return _to_bytes(encoder.get_compressed())


def decode_categorical(data: bytes, probabilities: np.ndarray) -> np.ndarray:
    probs = np.ascontiguousarray(probabilities, dtype=np.float64)
    if probs.shape[0] == 0:
        return np.zeros(0, dtype=np.int32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(_from_bytes(data))
        return decoder.decode(_CATEGORICAL_FAMILY, probs)
    except StreamError:
        raise
    except Exception as exc:
        raise StreamError(f"corrupt categorical stream: {exc}") from None

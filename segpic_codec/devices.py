"""Which torch device a codec runs on (`--device auto|cpu|cuda`)."""

from __future__ import annotations

import torch

from .errors import CodecError


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CodecError("--device cuda was asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise CodecError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)

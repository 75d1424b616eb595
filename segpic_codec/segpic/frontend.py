"""SegPIC behind the codec-neutral API (`segpic_codec.codecs`): trained weights,
one network per model configuration."""

from __future__ import annotations

from pathlib import Path

from ..container import FrameHeader
from .codec import Codec
from .layout import parse_header


def load_encoder(weights: str | Path | None = None, model: str | None = None,
                 device: str = "auto") -> Codec:
    return Codec.load(weights, model=model, device=device)


def load_decoder(frame: FrameHeader, weights: str | Path | None = None,
                 device: str = "auto") -> Codec:
    """The weights that decode files like `frame`: those of its model, unless
    `weights` names a folder (the codec then checks the weights id)."""
    return Codec.load(weights, model=parse_header(frame).model, device=device)

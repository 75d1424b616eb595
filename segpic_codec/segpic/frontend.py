"""SegPIC behind the codec-neutral API (`segpic_codec.codecs`): trained weights,
one network per model configuration. Its options are declared in `options`."""

from __future__ import annotations

from pathlib import Path

from ..container import FrameHeader
from .layout import parse_header


def load_encoder(device: str = "auto", weights: str | Path | None = None,
                 model: str | None = None, exact: bool | None = None):
    """exact: float64 synthesis for the reconstruction (default: $SEGPIC_EXACT).
    The `Codec` it returns is the encoder (`Codec.encode_streams`)."""
    from .codec import Codec

    return Codec.load(weights, model=model, device=device, exact=exact)


def load_decoder(frame: FrameHeader, weights: str | Path | None = None,
                 device: str = "auto", exact: bool | None = None):
    """The weights that decode files like `frame`: those of its model, unless
    `weights` names a folder (the codec then checks the weights id). exact: float64
    synthesis, pixels bit for bit the same everywhere (default: $SEGPIC_EXACT)."""
    from .codec import Codec

    return Codec.load(weights, model=parse_header(frame).model, device=device, exact=exact)

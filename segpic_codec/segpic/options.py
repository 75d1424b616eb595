"""SegPIC's options, declared once (see `segpic_codec.options`): the command line,
the Python API and the Pillow plugin read them here. Torch-free."""

from __future__ import annotations

from ..options import CodecOption, CodecOptions
from .config import CONFIGS, DEFAULT_CONFIG
from .layout import MAX_GRID

DEFAULT_GRID = 4

OPTIONS = CodecOptions((
    CodecOption("weights", "path", "weights folder or manifest (default: the shipped "
                "weights).", "loader"),
    CodecOption("model", "choice", f"model configuration (default: {DEFAULT_CONFIG}, or the "
                "model of --weights).", "loader", choices=tuple(sorted(CONFIGS))),
    CodecOption("exact", "bool", "float64 synthesis, pixels bit for bit the same "
                "everywhere (default: $SEGPIC_EXACT).", "loader", decoder=True, cli=False),
    CodecOption("grid", "int", "n x n grid of regions replacing the masks.", "encode",
                default=DEFAULT_GRID, minimum=1, maximum=MAX_GRID),
), rate_targets=True)

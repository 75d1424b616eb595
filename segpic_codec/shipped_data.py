"""Where the installed package keeps the data it ships (trained weights, the
MoRIC network prior).

The repository keeps them in its top-level weights/; the wheel and the sdist
carry that folder as the package `segpic_codec.shipped_weights` (pyproject.toml
maps it), so an installed segpic finds them anywhere."""

from __future__ import annotations

from pathlib import Path

SOURCE_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def shipped_weights_root() -> Path:
    """The shipped weights/ folder: the installed package's, or the source
    tree's when segpic runs from a checkout without being installed."""
    try:
        import segpic_codec.shipped_weights as shipped
    except ImportError:
        return SOURCE_WEIGHTS
    for folder in getattr(shipped, "__path__", []):
        return Path(folder)
    return SOURCE_WEIGHTS

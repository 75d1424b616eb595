"""The codecs segpic knows, one line each: the name, the id byte the container
frame stores, and the package that holds the codec (its `options`, `layout` and
`frontend`, see `segpic_codec.codecs`). Adding a codec is its folder plus one line
here. Data only: the container reads its ids from here, and nothing here imports
a codec until it is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .options import CodecOptions


@dataclass(frozen=True)
class CodecEntry:
    name: str
    id: int  # the frame's codec id byte: never reused for another codec
    summary: str
    package: str  # holds `options`, `layout` and `frontend`

    @property
    def title(self) -> str:
        """The codec's name as its paper writes it (the summary's first word)."""
        return self.summary.split()[0]

    def options(self) -> CodecOptions:
        return importlib.import_module(f"{self.package}.options").OPTIONS

    def layout(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.layout")

    def frontend(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.frontend")


CODECS: dict[str, CodecEntry] = {
    entry.name: entry for entry in (
        CodecEntry("segpic", 1, "SegPIC (ECCV 2024): amortised, trained weights, fast",
                   "segpic_codec.segpic"),
        CodecEntry("moric", 2, "MoRIC (NeurIPS 2025): overfitted per image, no weights, "
                   "slow to encode", "segpic_codec.moric"),
    )
}
DEFAULT_CODEC = "segpic"

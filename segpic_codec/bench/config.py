"""RunConfig: what one `segpic bench rd` run measures and where it writes. Its
own module because the codecs, the runner and the report all read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunConfig:
    src: Path
    out: Path
    quick: bool
    codecs: tuple[str, ...]
    device: str
    threads: int
    limit: int | None
    weights: Path | None
    anchors: Path | None
    command: str
    notes: list[str] = field(default_factory=list)
    images: tuple[str, ...] = ()  # --images: the only images measured (names or stems)
    steps: tuple[int, ...] = ()  # --steps: step budgets for the codecs that take one
    jobs: int = 1  # --jobs: slow codecs run this many (image, setting) runs at once


"""The RD plot (rd.png): measured curves solid, published curves dashed."""

from __future__ import annotations

import math
from pathlib import Path

from .anchors import PLOTTED_ANCHORS
from .bd_rate import curve
from .codecs import BenchCodec

MEASURED_COLOURS = {"segpic": "C3", "segpic-cuda": "C3", "jpeg": "C1", "webp": "C2",
                    "avif": "C4", "jxl": "C5", "heic": "C6"}
# Curves of the same codec (one per step budget) share its colour, told apart by marker.
MARKERS = ("o", "s", "^", "D", "v", "P")
X_MAX = 1.6  # bpp


def plot_rd(path: Path, codecs: list[BenchCodec], results: dict[str, dict],
            anchors: dict[str, dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 7.5), dpi=120)
    visible: list[float] = []
    keys = [c.key for c in codecs]
    # segpic-cuda lies on the CPU curve; draw it only when it is the only segpic
    drawn = [c for c in codecs if not (c.key == "segpic-cuda" and "segpic" in keys)]
    seen: dict[str, int] = {}  # curves drawn so far per codec family
    for c in drawn:
        b, p = curve(results[c.key])
        segpic = c.key.startswith("segpic")
        family = c.family or c.key
        colour = MEASURED_COLOURS.get(c.key) or MEASURED_COLOURS.get(family, "C9")
        nth = seen[family] = seen.get(family, -1) + 1
        ax.plot(b, p, "-", marker=MARKERS[nth % len(MARKERS)], ms=5 if segpic else 4,
                lw=2.6 if segpic else 1.8, color=colour,
                label=f"{c.label or c.name} (measured)", zorder=3)
        visible += [v for bb, v in zip(b, p, strict=True) if bb <= X_MAX]
    for stem, (name, colour) in PLOTTED_ANCHORS.items():
        if stem not in anchors:
            continue
        b, p = curve(anchors[stem])
        ax.plot(b, p, "--", marker=".", ms=4, lw=1.3, color=colour, alpha=0.85,
                label=f"{name} (published)", zorder=2)
        visible += [v for bb, v in zip(b, p, strict=True) if bb <= X_MAX]
    if visible:
        ax.set_ylim(math.floor(min(visible)) - 0.5, math.ceil(max(visible)) + 0.5)
    ax.set_xlim(0, X_MAX)
    ax.set_xlabel("bits per pixel (real file size)")
    ax.set_ylabel("PSNR-RGB (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

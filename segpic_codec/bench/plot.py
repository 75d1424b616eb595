"""The RD plot (rd.png): measured curves solid, published curves dashed; every
curve has its own colour and its own marker, and the legend lists the curves in
the order they are drawn (measured first, then published)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .anchors import PLOTTED_ANCHORS
from .bd_rate import curve
from .codecs import BenchCodec

# Preferred colours of the measured codecs (a published curve of the same codec
# takes a lighter shade of it, see anchors.PLOTTED_ANCHORS).
MEASURED_COLOURS = {"segpic": "#d62728", "segpic-cuda": "#d62728", "jpeg": "#ff7f0e",
                    "webp": "#2ca02c", "avif": "#9467bd", "jxl": "#8c564b",
                    "heic": "#e377c2", "moric": "#1f77b4", "moric-n1": "#7f7f7f"}
# Colours for the curves whose preferred colour is taken or who have none, in order.
SPARE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
                 "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                 "#756bb1", "#636363")
MEASURED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
PUBLISHED_MARKERS = ("x", "+", "1", "2", "3", "4", "|", "_", ".", "8", "H", "d")
X_MAX = 1.6  # bpp


def curve_styles(measured: Sequence[tuple[str, str]], published: Sequence[str]
                 ) -> list[tuple[str, str]]:
    """(colour, marker) of each curve, measured ones first, in drawing order.
    measured: (key, family) per curve; published: anchor stems. A curve gets its
    preferred colour unless an earlier curve has it, else the first spare colour
    that no curve has and no other curve prefers; markers go in turn, so no two
    curves share one while the lists last."""
    used: set[str] = set()
    styles = []
    wanted = [MEASURED_COLOURS.get(key) or MEASURED_COLOURS.get(family)
              for key, family in measured]
    wanted += [PLOTTED_ANCHORS[stem][1] if stem in PLOTTED_ANCHORS else None
               for stem in published]
    markers = [MEASURED_MARKERS[i % len(MEASURED_MARKERS)] for i in range(len(measured))]
    markers += [PUBLISHED_MARKERS[i % len(PUBLISHED_MARKERS)] for i in range(len(published))]
    reserved = {c for c in wanted if c is not None}
    for colour, marker in zip(wanted, markers, strict=True):
        if colour is None or colour in used:
            free = [c for c in SPARE_COLOURS if c not in used]
            colour = next((c for c in free if c not in reserved),
                          free[0] if free else SPARE_COLOURS[len(used) % len(SPARE_COLOURS)])
        used.add(colour)
        styles.append((colour, marker))
    return styles


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
    published = [stem for stem in PLOTTED_ANCHORS if stem in anchors]
    styles = curve_styles([(c.key, c.family or c.key) for c in drawn], published)
    for c, (colour, marker) in zip(drawn, styles[:len(drawn)], strict=True):
        b, p = curve(results[c.key])
        segpic = c.key.startswith("segpic")
        ax.plot(b, p, "-", marker=marker, ms=5 if segpic else 4,
                lw=2.6 if segpic else 1.8, color=colour,
                label=f"{c.label or c.name} (measured)", zorder=3)
        visible += [v for bb, v in zip(b, p, strict=True) if bb <= X_MAX]
    for stem, (colour, marker) in zip(published, styles[len(drawn):], strict=True):
        b, p = curve(anchors[stem])
        ax.plot(b, p, "--", marker=marker, ms=5, lw=1.3, color=colour, alpha=0.85,
                label=f"{PLOTTED_ANCHORS[stem][0]} (published)", zorder=2)
        visible += [v for bb, v in zip(b, p, strict=True) if bb <= X_MAX]
    if visible:
        ax.set_ylim(math.floor(min(visible)) - 0.5, math.ceil(max(visible)) + 0.5)
    ax.set_xlim(0, X_MAX)
    ax.set_xlabel("bits per pixel (real file size)")
    ax.set_ylabel("PSNR-RGB (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()  # in drawing order
    ax.legend(handles, labels, loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

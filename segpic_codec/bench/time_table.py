"""`segpic bench table minutes`: BD-rate against VTM by encode budget, the
quality-per-minute view of MoRIC (a table and a plot with log minutes on x).

Each `--points SERIES=FILE` adds the curves of a `segpic bench points` file to
a series ("today", "now"): one curve per step budget (and recipe override),
averaged over the images of the results folders (or over those of them the
series has, named in its label). A curve's minutes come from
its step count through `--minutes STEPS=MIN,...` (the step rate of one thread
on the machine that set them); AVIF, HEIC, JPEG XL (from the folders) and
Cool-Chic 5.0 per image are drawn as horizontal lines.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import shared_data
from .anchors import load_anchors, per_image_anchors
from .bd_rate import bd
from .common import BenchError
from .report import pct
from .table import CONTEXT, OTHERS, _json_lines, _load_runs, curves_from_points

# the MoRIC time issue's budget: steps of the encoder at 0321473 per minutes of
# one thread, measured on the 2-core CPU that set the targets
DEFAULT_MINUTES = "180=1,440=2.5,1000=5.7,1800=10,3000=17"


def _images_in(files: list[Path]) -> set[str]:
    return {r["image"] for f in files for r in _json_lines(f) if "image" in r}


def _minutes(spec: str) -> dict[int, float]:
    try:
        pairs = (item.split("=") for item in spec.split(",") if item)
        return {int(s): float(m) for s, m in pairs}
    except ValueError:
        raise BenchError(f"--minutes {spec!r}: give STEPS=MINUTES pairs, "
                         "comma-separated") from None


@click.command("minutes", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--points", "series_points", multiple=True, metavar="SERIES=FILE",
              help="`segpic bench points` lines of one series (repeatable).")
@click.option("--minutes", "minutes_spec", default=DEFAULT_MINUTES, show_default=True,
              help="Encode minutes per image of each step budget.")
@click.option("--anchors", "anchor_dir",
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Published curves (default: $SEGPIC_SHARED/anchors/kodak).")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Also draw BD-rate against minutes into this PNG.")
def minutes_table(runs: tuple[Path, ...], series_points: tuple[str, ...],
                  minutes_spec: str, anchor_dir: Path | None, plot: Path | None) -> None:
    """BD-rate against VTM by encode minutes per image, per series."""
    if anchor_dir is None:
        try:
            anchor_dir = shared_data.anchors_dir()
        except shared_data.SharedDataError as exc:
            raise BenchError(f"{exc} (or give --anchors DIR)") from None
    minutes = _minutes(minutes_spec)
    results, images = _load_runs(runs)
    anchors = load_anchors(anchor_dir)
    anchors.update(per_image_anchors(anchor_dir, images))
    vtm = anchors.get("vtm")
    if vtm is None:
        raise BenchError(f"{anchor_dir}: no VTM curve")
    files_of: dict[str, list[Path]] = {}
    for item in series_points:
        name, sep, file = item.partition("=")
        if not sep or not Path(file).is_file():
            raise BenchError(f"--points {item!r}: give SERIES=FILE with an existing file")
        files_of.setdefault(name, []).append(Path(file))
    by_series: dict[str, dict[str, dict]] = {}
    for name, files in files_of.items():
        # a series on fewer images than the folders (the issue lets "today"
        # stay on four) is averaged over its own, and says so in its name
        own = [i for i in images if i in _images_in(files)]
        if not own:
            raise BenchError(f"--points {name}: no point of the images {', '.join(images)}")
        label = name if own == images else \
            f"{name}, {len(own)} image{'s' if len(own) > 1 else ''}"
        for f in files:
            by_series.setdefault(label, {}).update(curves_from_points([f], own, label))
    rows = []  # (series, curve name, steps, minutes, BD vs VTM)
    for name, curves in by_series.items():
        for curve in sorted(curves.values(), key=lambda c: c["steps"]):
            if curve["steps"] not in minutes:
                raise BenchError(f"{curve['name']}: no minutes for {curve['steps']} steps "
                                 "(add it to --minutes)")
            rows.append((name, curve["name"], curve["steps"], minutes[curve["steps"]],
                         bd(vtm, curve).value))
    lines = [(results[k]["name"], bd(vtm, results[k]).value) for k in OTHERS if k in results]
    if "coolchic-v50@images" in anchors:
        lines.append(("Cool-Chic 5.0 (published, same images)",
                      bd(vtm, anchors["coolchic-v50@images"]).value))
    click.echo(f"Images: {', '.join(images)}\n")
    click.echo("| series | curve | steps | minutes | vs VTM |\n|---|---|--:|--:|--:|")
    for series, curve, steps, mins, value in rows:
        click.echo(f"| {series} | {curve} | {steps} | {mins:g} | {pct(value)} |")
    for label, value in lines:
        click.echo(f"| (line) | {label} | | | {pct(value)} |")
    if plot is not None:
        _plot(plot, rows, lines, images)
        click.echo(f"\nwrote {plot}")


def _plot(path: Path, rows: list[tuple], lines: list[tuple[str, float | None]],
          images: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for series in dict.fromkeys(r[0] for r in rows):
        pts = [(r[3], r[4]) for r in rows if r[0] == series and r[4] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"MoRIC, {series}")
        for x, y in pts:
            ax.annotate(f"{y:+.0f}%", (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    styles = iter(["--", ":", "-.", (0, (5, 1)), (0, (1, 3))])
    for i, (label, value) in enumerate(lines):
        if value is not None:  # labels alternate sides: close lines (AVIF, HEIC) stay legible
            ax.axhline(value, linestyle=next(styles), color="gray", linewidth=1)
            side = (0.0, 4, "left") if i % 2 else (1.0, -4, "right")
            ax.annotate(f"{label} {value:+.0f}%", (side[0], value), xycoords=(
                        "axes fraction", "data"), xytext=(side[1], 2),
                        textcoords="offset points", ha=side[2], fontsize=7, color="dimgray")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("encode minutes per Kodak image (one thread; from the step budget)")
    ax.set_ylabel("BD-rate against VTM (%, lower is better)")
    ax.set_title(f"MoRIC quality per minute, Kodak {', '.join(images)}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""`segpic bench table screen`: recipe variants against a base, point by point.

A BD-rate needs four points per image; screening a recipe knob needs fewer
encodes. So each point of a variant is compared with the base's curve of the
same image at the same PSNR: the rate change against the base's rate there,
log-rate linear in PSNR through the base's two nearest points (extended past
its ends). Its mean over the points is a screen, not a BD-rate: a knob that
passes it is then measured with full curves.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np

from .common import BenchError
from .table import CONTEXT, _points_by_image


def rate_change(base: list[tuple[float, float]], bpp: float, psnr: float) -> float:
    """The rate change (%) of (bpp, psnr) against the curve through `base`'s
    (bpp, psnr) points at the same PSNR."""
    points = sorted(base, key=lambda p: p[1])
    if len(points) < 2:
        raise BenchError("a base curve needs two points of the image")
    # the two base points around psnr, or the two nearest past an end
    upper = min(max(int(np.searchsorted([p[1] for p in points], psnr)), 1), len(points) - 1)
    (r0, p0), (r1, p1) = points[upper - 1], points[upper]
    if p1 == p0:
        raise BenchError("two base points of one image at the same PSNR")
    log_rate = math.log(r0) + (psnr - p0) * (math.log(r1) - math.log(r0)) / (p1 - p0)
    return 100.0 * (bpp / math.exp(log_rate) - 1.0)


@click.command("screen", context_settings=CONTEXT)
@click.argument("base_file", metavar="BASE",
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("variants", metavar="VARIANT...", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
def screen_table(base_file: Path, variants: tuple[Path, ...]) -> None:
    """Each VARIANT points file against BASE: per point, the rate change at the
    same PSNR on BASE's curve of its image; the mean over the points."""
    base = _points_by_image(base_file)
    click.echo("| variant | points (image, quality: rate change at equal PSNR) | mean |")
    click.echo("|---|---|--:|")
    for path in variants:
        changes = [(image, row["quality"],
                    rate_change([(r["bpp"], r["psnr"]) for r in base[image]],
                                row["bpp"], row["psnr"]))
                   for image, rows in sorted(_points_by_image(path).items()) if image in base
                   for row in rows]
        if not changes:
            raise BenchError(f"{path}: no image in common with {base_file}")
        listed = ", ".join(f"{image} q{q:g}: {c:+.1f}%" for image, q, c in changes)
        mean = float(np.mean([c for *_, c in changes]))
        click.echo(f"| {path.stem} | {listed} | {mean:+.1f}% |")

"""`segpic bench table`: markdown BD-rate tables (and a plot) from what the bench
wrote before, measuring nothing.

    runs      several `segpic bench rd` results folders of the same images (one
              per step budget, say) and `segpic bench points` lines: the MoRIC
              curves against VTM, the conventional codecs of those runs and
              Cool-Chic per image averaged over the same images
    regions   two `segpic bench points` files of the same images (N = 3
              regions against one, or one partition at two budgets): BD-rate
              per image, against each other and against Cool-Chic 5.0, and the
              contour stream's share of each file
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from .. import shared_data
from .anchors import PLOTTED_ANCHORS, load_anchors, per_image_anchor_file, per_image_anchors
from .bd_rate import bd, bd_rate
from .codecs import BenchCodec, steps_label
from .common import BenchError
from .plot import plot_rd
from .report import pct

CONTEXT = {"help_option_names": ["-h", "--help"]}
OTHERS = ("avif", "heic", "jxl")  # the conventional codecs set beside MoRIC
KODAK_PIXELS = 768 * 512  # every Kodak image has 393,216 pixels


def _json_lines(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not readable as JSON lines ({exc})") from None


@click.group("table", context_settings=CONTEXT)
def table() -> None:
    """BD-rate tables and plots from results folders, points files and anchors."""


# ------------------------------------------------------------------ runs
def curves_from_points(files: list[Path], images: list[str], label: str) -> dict[str, dict]:
    """bench-style results, {key: {name, steps, results: {bpp, psnr-rgb}}}, from
    `segpic bench points` lines: one curve per (steps, regions), each point the
    mean bpp and mean PSNR over `images` at one quality, as `segpic bench rd`
    averages; points made with recipe overrides (`--set`) are curves of their
    own; a quality missing for any image is an error."""
    groups: dict[tuple[int, str, tuple[str, ...]], dict[float, dict[str, dict]]] = {}
    for f in files:
        for r in _json_lines(f):
            if not all(k in r for k in ("image", "quality", "steps", "bpp", "psnr")):
                raise BenchError(f"{f}: a line lacks one of image, quality, steps, bpp, psnr")
            if r["image"] in images:
                key = (r["steps"], r.get("regions_asked", "none"), tuple(r.get("set", ())))
                group = groups.setdefault(key, {})
                group.setdefault(r["quality"], {})[r["image"]] = r
    out = {}
    for (steps, regions, overrides), by_quality in sorted(groups.items()):
        for quality, per_image in by_quality.items():
            missing = sorted(set(images) - set(per_image))
            if missing:
                raise BenchError(f"--points: {steps} steps, regions {regions}, quality "
                                 f"{quality:g}: no point for {', '.join(missing)}")
        qualities = sorted(by_quality)
        regions_name = "one region" if regions == "none" else f"regions {regions}"
        recipe = "".join(f", {o}" for o in overrides)
        out[f"moric-{steps}-{regions}{recipe.replace(', ', '-')}-{label}"] = {
            "name": f"MoRIC ({steps_label(steps)} steps, {regions_name}{recipe}, {label})",
            "steps": steps,
            "results": {m: [sum(by_quality[q][i][key] for i in images) / len(images)
                            for q in qualities]
                        for m, key in (("bpp", "bpp"), ("psnr-rgb", "psnr"))},
        }
    return out


def _load_runs(runs: tuple[Path, ...]) -> tuple[dict[str, dict], list[str]]:
    """The codec curves of the results folders, which must share their images."""
    results: dict[str, dict] = {}
    images: list[str] | None = None
    for run in runs:
        for f in sorted(run.glob("*.json")):
            if f.stem in ("per_image", "summary"):
                continue
            try:
                d = json.loads(f.read_text())
                curve_ok = {"bpp", "psnr-rgb"} <= set(d["results"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise BenchError(f"{f}: not a bench results file ({exc})") from None
            if not curve_ok:
                raise BenchError(f"{f}: not a bench results file (no bpp or psnr-rgb)")
            names = [Path(n).stem for n in d.get("image_names", [])]
            if images is None:
                images = names
            if names != images:
                raise BenchError(f"{f}: other images ({names}) than {images}")
            if f.stem in results and any(results[f.stem]["results"][m] != d["results"][m]
                                         for m in ("bpp", "psnr-rgb")):
                raise BenchError(f"{f}: other rates or PSNRs than the same codec in an "
                                 "earlier run")
            results.setdefault(f.stem, d)
    if not results:
        raise BenchError(f"no codec results (<codec>.json) in {', '.join(map(str, runs))}")
    return results, images or []


@table.command("runs", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--anchors", "anchor_dir",
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Published curves (default: $SEGPIC_SHARED/anchors/kodak).")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Also draw the curves into this PNG.")
@click.option("--points", "points_files", multiple=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="`segpic bench points` lines, added as MoRIC curves (repeatable).")
@click.option("--label", default="CPU", show_default=True,
              help="What sets the --points curves apart.")
def runs_table(runs: tuple[Path, ...], anchor_dir: Path | None, plot: Path | None,
               points_files: tuple[Path, ...], label: str) -> None:
    """MoRIC curves by step budget beside the other codecs and the published curves."""
    if anchor_dir is None:
        try:
            anchor_dir = shared_data.anchors_dir()
        except shared_data.SharedDataError as exc:
            raise BenchError(f"{exc} (or give --anchors DIR)") from None
    results, images = _load_runs(runs)
    results.update(curves_from_points(list(points_files), images, label))
    anchors = load_anchors(anchor_dir)
    anchors.update(per_image_anchors(anchor_dir, images))
    moric = sorted((k for k in results if k.startswith("moric")),
                   key=lambda k: results[k].get("steps", 0))
    refs = [("VTM", anchors.get("vtm"))]
    refs += [(results[k]["name"], results[k]) for k in OTHERS if k in results]
    refs += [(PLOTTED_ANCHORS[s][0], anchors[s]) for s in ("coolchic-v50@images",
                                                          "coolchic-v42@images") if s in anchors]
    click.echo(f"Images: {', '.join(images)}\n")
    click.echo("| curve | steps | bpp range | " + " | ".join(f"vs {n}" for n, _ in refs) + " |")
    click.echo("|---|--:|--:|" + "--:|" * len(refs))
    shown = moric + [k for k in OTHERS if k in results]
    for key in shown:
        d = results[key]
        b = d["results"]["bpp"]
        cells = [pct(bd(ref, d).value) if ref is not None and ref is not d else "-"
                 for _, ref in refs]
        click.echo(f"| {d['name']} | {d.get('steps', '')} | {min(b):.3f}-{max(b):.3f} | "
                   + " | ".join(cells) + " |")
    if plot is not None:
        codecs = [BenchCodec(k, results[k]["name"], "", (), (), "", lambda *a: None,
                             label=results[k]["name"], family=k.split("-")[0])
                  for k in shown]
        drawn = {k: v for k, v in anchors.items()
                 if k in ("vtm", "coolchic-v50@images", "paper-moric2025_mse")}
        plot_rd(plot, codecs, results, drawn,
                f"Kodak {', '.join(images)}: MoRIC by step budget (solid: measured)")
        click.echo(f"\nwrote {plot}")


# ------------------------------------------------------------------ regions
def _points_by_image(path: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in _json_lines(path):
        if not all(k in r for k in ("image", "quality", "bpp", "psnr")):
            raise BenchError(f"{path}: a line lacks one of image, quality, bpp, psnr")
        rows.setdefault(r["image"], []).append(r)
    return {k: sorted(v, key=lambda r: r["quality"]) for k, v in rows.items()}


def per_image_curves(path: Path | None) -> dict[str, tuple[list[float], list[float]]]:
    """A published per-image TSV (image, lambda, bpp, psnr_rgb) -> image: (bpp, psnr)."""
    if path is None or not path.is_file():
        return {}
    out: dict[str, list[tuple[float, float]]] = {}
    for line in path.read_text().splitlines()[1:]:
        if line:
            image, _, bpp, psnr = line.split("\t")
            out.setdefault(image, []).append((float(bpp), float(psnr)))
    return {k: ([p[0] for p in sorted(v)], [p[1] for p in sorted(v)]) for k, v in out.items()}


def _bd_rows(anchor: tuple[list[float], list[float]], rows: list[dict]) -> float | None:
    return bd_rate(*anchor, [r["bpp"] for r in rows], [r["psnr"] for r in rows]).value


@table.command("regions", context_settings=CONTEXT)
@click.argument("first_file", metavar="FIRST",
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("second_file", metavar="SECOND",
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--anchor", default=None, metavar="FILE|none",
              help="Published per-image curve (default: $SEGPIC_SHARED/anchors/kodak/"
                   "per_image/coolchic-v50.tsv when present).")
@click.option("--labels", default="N=3,N=1", show_default=True,
              help="Names of the two variants, comma separated.")
@click.option("--pixels", type=click.IntRange(min=1), default=KODAK_PIXELS, show_default=True,
              help="Pixels per image.")
def regions_table(first_file: Path, second_file: Path, anchor: str | None, labels: str,
                  pixels: int) -> None:
    """Two points files compared per image: FIRST against SECOND (e.g. N = 3
    regions against one), each against Cool-Chic 5.0, and the contour share.
    Only images measured at the same qualities in both files are compared."""
    names = [n.strip() for n in labels.split(",")]
    if len(names) != 2 or not all(names):
        raise BenchError(f"--labels {labels}: give two names separated by a comma")
    first, second = names
    anchor_file = per_image_anchor_file(anchor)
    many, one = _points_by_image(first_file), _points_by_image(second_file)
    anchors = per_image_curves(anchor_file)
    images = sorted(i for i in many if i in one
                    and [r["quality"] for r in many[i]] == [r["quality"] for r in one[i]])
    click.echo(f"| image | steps | {first} vs {second} | {first} vs Cool-Chic 5.0 | "
               f"{second} vs Cool-Chic 5.0 | contour share of the file ({first}), by quality |")
    click.echo("|---|--:|--:|--:|--:|---|")
    collected: dict[str, list[float]] = {"n3_vs_n1": [], "n3_vs_cc": [], "n1_vs_cc": []}
    for image in images:
        a, b = many[image], one[image]
        vs_one = _bd_rows(([r["bpp"] for r in b], [r["psnr"] for r in b]), a)
        vs_cc3 = _bd_rows(anchors[image], a) if image in anchors else None
        vs_cc1 = _bd_rows(anchors[image], b) if image in anchors else None
        for key, v in (("n3_vs_n1", vs_one), ("n3_vs_cc", vs_cc3), ("n1_vs_cc", vs_cc1)):
            if v is not None:
                collected[key].append(v)
        shares = ", ".join(f"q{r['quality']:g}: "
                           f"{100 * 8 * r.get('contour_bytes', 0) / (r['bpp'] * pixels):.2f}%"
                           for r in a)
        steps = "/".join(sorted({str(r.get("steps")) for r in a + b},
                               key=lambda s: int(s) if s.isdigit() else 0))
        click.echo(f"| {image} | {steps} | {pct(vs_one)} | {pct(vs_cc3)} | "
                   f"{pct(vs_cc1)} | {shares} |")
        for name, rows in ((first, a), (second, b)):
            click.echo(f"|   points {name} |  | "
                       + "; ".join(f"{r['bpp']:.3f} bpp {r['psnr']:.2f} dB" for r in rows)
                       + " | | | |")
    if len(images) > 1:
        means = {k: (float(np.mean(v)) if v else None) for k, v in collected.items()}
        click.echo(f"| mean of per-image BD-rates | | {pct(means['n3_vs_n1'])} | "
                   f"{pct(means['n3_vs_cc'])} | {pct(means['n1_vs_cc'])} | |")

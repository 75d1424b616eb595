"""`segpic bench points`: encode images one at a time and write one JSON line per
(image, quality): rate, PSNR, times and what the codec tells about its streams.

bpp is 8 x the size of the real .spic file (container frame included) over the
pixels; PSNR is RGB PSNR of what the decoder returns from the file's bytes,
checked against the encoder's reconstruction ("exact"). A codec that declares
`encode_point` in its measure hooks (MoRIC) runs at a step or time budget and
adds its own fields (steps done, parameter and contour bytes, regions); any
other codec goes through the public API at its own defaults. The lines are what
`segpic bench table runs --points` and `segpic bench table regions` read.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..quality_metrics import psnr_rgb
from .anchors import PER_IMAGE_ANCHOR, per_image_anchor_file
from .common import BenchError, codec_measure

# Field order of a line (fields a codec does not give are left out).
FIELD_ORDER = ("image", "codec", "quality", "preset", "steps", "threads", "bpp", "file_bytes",
               "psnr", "encode_s", "decode_s", "params_bytes", "regions_asked", "regions",
               "contour_bytes", "exact", "set")


def parse_floats(value: str, option: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or not all(math.isfinite(v) for v in out):
        raise BenchError(f"{option} {value}: give numbers separated by commas (e.g. 1,2.5)")
    return out


def anchor_comparison(anchor: Path | None, image: str, bpp: float, psnr_db: float) -> dict:
    """Against a published per-image curve (Cool-Chic 5.0: 10k iterations, GPU):
    its PSNR at our rate and its rate at our PSNR, interpolated linearly in
    (log bpp, PSNR); empty outside its range or without the file."""
    if anchor is None or not anchor.is_file():
        return {}
    rows = [line.split("\t") for line in anchor.read_text().splitlines()[1:] if line]
    points = sorted((float(r[2]), float(r[3])) for r in rows if r[0] == image)
    if len(points) < 2:
        return {}
    log_rate = np.log([p[0] for p in points])
    quality = np.array([p[1] for p in points])
    out = {}
    if log_rate[0] <= math.log(bpp) <= log_rate[-1]:
        out["coolchic50_psnr_at_our_bpp"] = round(float(np.interp(math.log(bpp), log_rate,
                                                                  quality)), 3)
    if quality[0] <= psnr_db <= quality[-1]:
        out["coolchic50_bpp_at_our_psnr"] = round(float(np.exp(np.interp(psnr_db, quality,
                                                                         log_rate))), 4)
    return out


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    first = {k: row[k] for k in FIELD_ORDER if k in row}
    return {**first, **{k: v for k, v in row.items() if k not in first}}


def _already_done(out: Path | None) -> set[tuple]:
    """(image, quality, steps, regions) of the lines already in --out: a run
    that stopped resumes where it was."""
    done: set[tuple] = set()
    if out is not None and out.is_file():
        for line in out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done.add((r["image"], r["quality"], r.get("steps"),
                          r.get("regions_asked", "none")))
    return done


@click.command("points", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--codec", default="moric", show_default=True, help="Which codec encodes.")
@click.option("--quality", "qualities", default="3.5", show_default=True, metavar="LIST",
              help="Qualities, comma separated (e.g. 1,2.5,3.8,4.7).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimisation steps per encode (default: the preset's).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds of optimisation per encode.")
@click.option("--preset", default="medium", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="torch threads.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--regions", default="auto", show_default=True, help="auto | none.")
@click.option("--region-count", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field of the preset's recipe for every encode (repeatable, "
                   "e.g. --set features=16); the lines record them under \"set\".")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Append the lines to this file too; points already in it are skipped.")
@click.option("--save-dir", type=click.Path(path_type=Path), default=None,
              help="Keep the .spic files here (IMAGE-qQ-STEPS-REGIONS.spic).")
@click.option("--anchor", default=None, metavar="FILE|none",
              help="Published per-image curve (TSV) to place each point against "
                   f"(default: $SEGPIC_SHARED/anchors/kodak/per_image/{PER_IMAGE_ANCHOR}.tsv "
                   "when present).")
@click.option("--verbose", is_flag=True, help="Progress every 100 steps.")
def points(images: tuple[Path, ...], codec: str, qualities: str, steps: int | None,
           time_limit: float | None, preset: str, threads: int, seed: int, device: str,
           regions: str, region_count: int, overrides: tuple[str, ...], out: Path | None,
           save_dir: Path | None, anchor: str | None, verbose: bool) -> None:
    """One JSON line per encode of each image at each quality (rate, PSNR, times)."""
    import torch

    from .. import codecs as registry
    from ..image_io import load_image

    try:
        registry.get(codec)
    except ValueError as exc:  # CodecError: unknown codec
        raise BenchError(str(exc)) from None
    try:
        hooks = codec_measure(codec)
    except BenchError:  # no hooks: the public API at the codec's defaults
        hooks = None
    encode_point = getattr(hooks, "encode_point", None)
    if encode_point is None and (steps or time_limit or overrides):
        raise BenchError(f"{codec} takes no step or time budget or recipe (--steps, "
                         "--time-limit, --set)")
    try:
        recipe = hooks.recipe_overrides(list(overrides)) if overrides else {}
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    anchor_file = per_image_anchor_file(anchor)
    torch.set_num_threads(threads)

    def progress(info: dict) -> None:
        if verbose and info["step"] % 100 == 0:
            click.echo(f"  step {info['step']}/{info['total']} bpp {info['bpp']:.4f} "
                       f"psnr {info['psnr']:.2f} elapsed {info['elapsed']:.0f}s", err=True)

    done = _already_done(out)
    for path in images:
        try:
            pixels = load_image(path).pixels
        except ValueError as exc:  # ImageError: "path: reason"
            raise BenchError(str(exc)) from None
        h, w = pixels.shape[:2]
        for quality in parse_floats(qualities, "--quality"):
            asked_regions = regions if encode_point else "none"
            if (path.stem, quality, steps, asked_regions) in done:
                continue
            row: dict[str, Any] = {"image": path.stem, "quality": quality, "threads": threads}
            try:
                if encode_point is not None:
                    data, rec, seconds, own = encode_point(
                        pixels, quality, steps=steps, time_limit=time_limit, preset=preset,
                        device=device, seed=seed, regions=regions, region_count=region_count,
                        overrides=recipe, progress=progress)
                    decode = hooks.decode_file
                else:
                    encoder = registry.load_encoder(codec, device=device)
                    start = time.perf_counter()
                    res = encoder.encode(pixels, quality=quality)
                    seconds = time.perf_counter() - start
                    data, rec, own = res.data, res.reconstruction, {"codec": codec}
                    decode = registry.decode
                start = time.perf_counter()
                decoded = decode(data)
                decode_seconds = time.perf_counter() - start
            except ValueError as exc:  # CodecError and the other SegpicErrors
                raise BenchError(f"{path.name} at quality {quality:g}: {exc}") from None
            if save_dir is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                name = f"{path.stem}-q{quality:g}-{own.get('steps', 0)}-{asked_regions}.spic"
                (save_dir / name).write_bytes(data)
            row.update(own)
            row.update({"bpp": len(data) * 8 / (h * w), "file_bytes": len(data),
                        "psnr": psnr_rgb(pixels, decoded), "encode_s": round(seconds, 1),
                        "decode_s": round(decode_seconds, 3),
                        "exact": rec is None or bool(np.array_equal(decoded, rec))})
            if overrides:
                row["set"] = list(overrides)
            row.update(anchor_comparison(anchor_file, path.stem, row["bpp"], row["psnr"]))
            line = json.dumps(_ordered(row))
            click.echo(line)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("a") as f:
                    f.write(line + "\n")

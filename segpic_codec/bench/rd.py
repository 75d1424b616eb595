"""`segpic bench rd`: rate-distortion curves of the codecs on a folder of images,
written as a results folder (CompressAI JSON per codec, results.md, rd.png); its
options, their checks, and the command line recorded in the results."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .. import shared_data
from ..cores import usable_cores
from .codecs import CODECS, default_codecs, is_slow
from .common import REPO, BenchError, display_path, shared
from .config import RunConfig
from .report import pct, sig
from .runner import run_bench

QUICK_IMAGES = 2


def _default_out(quick: bool) -> Path:
    sub = Path("bench") / "results" / ("quick" if quick else "kodak")
    # inside a source checkout: the committed results folder; elsewhere: ./bench/...
    return REPO / sub if (REPO / "pyproject.toml").is_file() else Path.cwd() / sub


def _parse_codecs(value: str | None) -> tuple[str, ...]:
    if not value:
        return default_codecs()
    asked = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [v for v in asked if v not in CODECS]
    if unknown or not asked:
        raise BenchError(f"unknown codec(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {','.join(CODECS)}")
    return tuple(k for k in CODECS if k in asked)


def _parse_images(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not names:
        raise BenchError("--images: no image names given (e.g. --images kodim01,kodim05)")
    return names


def _parse_steps(value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    try:
        steps = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        steps = []
    if not steps or steps[0] < 1:
        raise BenchError(f"--steps {value}: give step budgets as positive whole numbers "
                         "separated by commas (e.g. --steps 1000,3000)")
    return tuple(steps)


def _slow_help() -> str:
    slow = [k for k in CODECS if is_slow(k)]
    return f"; slow, only when named: {','.join(slow)}" if slow else ""


def _command_line(src: Path | None, out: Path | None, quick: bool, codecs: str | None,
                  device: str, threads: int, limit: int | None, weights: Path | None,
                  anchors: str | None, images: tuple[str, ...] = (),
                  steps: tuple[int, ...] = (), jobs: int = 1) -> str:
    """The command that reproduces this run, written into the results."""
    parts = ["segpic", "bench", "rd"]
    if os.environ.get("OMP_WAIT_POLICY"):  # changes CPU timings a lot on a shared machine
        parts.insert(0, f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    if src is not None:
        parts.append(display_path(src))
    if quick:
        parts.append("--quick")
    if out is not None:
        parts += ["--out", display_path(out)]
    if codecs:
        parts += ["--codecs", codecs]
    if device != "auto":
        parts += ["--device", device]
    parts += ["--threads", str(threads)]
    if limit is not None:
        parts += ["--limit", str(limit)]
    if images:
        parts += ["--images", ",".join(images)]
    if steps:
        parts += ["--steps", ",".join(map(str, steps))]
    if jobs > 1:
        parts += ["--jobs", str(jobs)]
    if weights is not None:
        parts += ["--weights", display_path(weights)]
    if anchors is not None:
        parts += ["--anchors", anchors if anchors == "none" else display_path(Path(anchors))]
    return " ".join(parts)


@click.command("rd", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: bench/results/kodak; with --quick "
                   "bench/results/quick).")
@click.option("--quick", is_flag=True,
              help=f"Smoke test: {QUICK_IMAGES} images, 2-4 settings per codec.")
@click.option("--codecs", default=None, metavar="LIST",
              help=f"Comma list to measure (default: all of {','.join(default_codecs())}"
                   f"{_slow_help()}).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True,
              help="segpic's device (auto measures the CPU and, when present, CUDA too); "
                   "moric encodes on CUDA when present unless --device cpu.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch and the codecs that can use several "
                   "(default: every core available).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N images (sorted by name).")
@click.option("--images", "image_names", default=None, metavar="NAMES",
              help="Use only these images, for every codec: comma list of file stems "
                   "(e.g. kodim01,kodim05).")
@click.option("--steps", default=None, metavar="LIST",
              help="Step budgets for the codecs that optimise per image (comma list, e.g. "
                   "1000,3000): one curve per budget; other codecs ignore it.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Slow codecs (moric): run this many encodes at once, in worker "
                   "processes sharing --threads.")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="segpic weights folder (default: the shipped weights).")
@click.option("--anchors", default=None, metavar="DIR|none",
              help="Published curves (CompressAI JSON) to draw and compare against "
                   "(default: $SEGPIC_SHARED/anchors/kodak when SRC is Kodak; 'none' for "
                   "none).")
def rd(src: Path | None, out: Path | None, quick: bool, codecs: str | None, device: str,
       threads: int | None, limit: int | None, image_names: str | None, steps: str | None,
       jobs: int, weights: Path | None, anchors: str | None) -> None:
    """Rate-distortion and speed of segpic against JPEG, WebP, AVIF, JPEG XL and HEIC.

    SRC is a folder of images (default: Kodak in $SEGPIC_SHARED/data/kodak,
    SEGPIC_SHARED defaulting to ../shared beside the checkout). Writes per-codec
    JSON in CompressAI's format, per-image JSON, a markdown table with BD-rates
    (results.md) and an RD plot (rd.png).
    """
    n_threads = threads or usable_cores()
    cfg_note = ""
    folder = src if src is not None else shared("data", "kodak")
    if anchors == "none":
        anchor_dir = None
    elif anchors is not None:
        anchor_dir = Path(anchors)
        if not anchor_dir.is_dir():
            raise BenchError(f"anchors folder {anchor_dir} not found")
    elif src is None or folder.resolve().name.lower() == "kodak":
        # published numbers are Kodak numbers: never draw them beside another set
        anchor_dir = shared_data.anchors_dir(required=False)
        if anchor_dir is None:
            cfg_note = (f"published Kodak curves not drawn: no shared data folder "
                        f"({shared_data.ENV_VAR} unset; --anchors DIR to give them)")
    else:
        anchor_dir = None
        cfg_note = ("published Kodak curves not drawn: SRC is not Kodak "
                    "(--anchors DIR to use them anyway)")
    picked = _parse_images(image_names)
    budgets = _parse_steps(steps)
    if picked and limit is not None:
        raise BenchError("--images and --limit both choose the images: give one of them")
    cfg = RunConfig(
        src=folder,
        out=out if out is not None else _default_out(quick),
        quick=quick,
        codecs=_parse_codecs(codecs),
        device=device,
        threads=n_threads,
        # --images names the images, --quick's first two do not apply then
        limit=limit if limit is not None else (QUICK_IMAGES if quick and not picked else None),
        weights=weights,
        anchors=anchor_dir,
        command=_command_line(src, out, quick, codecs, device, n_threads, limit, weights,
                              anchors, picked, budgets, jobs),
        images=picked,
        steps=budgets,
        jobs=jobs,
    )
    slow = [k for k in cfg.codecs if is_slow(k)]
    if slow and not picked and cfg.limit is None:
        raise BenchError(f"{', '.join(slow)} {'takes' if len(slow) == 1 else 'take'} minutes "
                         "per image: choose the images with --images (e.g. --images "
                         "kodim01,kodim05) or --limit N")
    if src is None and not folder.is_dir():
        raise BenchError(f"Kodak not found at {folder.resolve()}; give a folder of images "
                         "as SRC")
    if anchor_dir is None and anchors is None:
        cfg.notes.append(cfg_note)
    summary = run_bench(cfg)
    out_dir = display_path(cfg.out)
    for key, s in summary["codecs"].items():
        click.echo(f"  {key:12s} BD-rate vs VTM {pct(s['bd_rate_vs_vtm']):>8s}  "
                   f"bpp {s['bpp'][0]:.3f}-{s['bpp'][1]:.3f}  "
                   f"encode {sig(s['encode_s'])}s decode {sig(s['decode_s'])}s")
    click.echo(f"wrote {out_dir}/results.md, rd.png, summary.json, per_image.json")

"""Running the bench: which images, every codec at every setting on each of them,
the means per setting (CompressAI's results format) and the speed medians; and
run_bench(), which does all that and writes the results."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from ..image_io import IMAGE_SUFFIXES, list_images
from ..quality_metrics import psnr_rgb
from .anchors import load_anchors, per_image_anchors
from .codecs import CODECS, BenchCodec, Measurement, build_codecs
from .common import BenchError, display_path, fmt_setting, json_num, loadavg, note
from .config import RunConfig
from .metrics import ms_ssim_rgb
from .plot import plot_rd
from .report import build_summary, environment, write_json, write_markdown


def source_images(src: Path) -> list[Path]:
    """The images of SRC (image_io.list_images); a missing or empty folder is a
    one-line error."""
    if not src.is_dir():
        raise BenchError(f"image folder {src} not found (give a folder of images as SRC)")
    images = list_images(src)
    if not images:
        raise BenchError(f"no images in {src} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def select_images(images: list[Path], names: Sequence[str], src: Path) -> list[Path]:
    """The images named by --images (file stems such as kodim01, or file names), in
    the folder's order; an unknown or ambiguous name is a one-line error."""
    picked: set[Path] = set()
    unknown = []
    for name in names:
        hits = [p for p in images if name in (p.name, p.stem)]
        if not hits:
            unknown.append(name)
        elif len(hits) > 1:
            raise BenchError(f"--images: {name} is ambiguous in {src} "
                             f"({', '.join(p.name for p in hits)}); give the file name")
        else:
            picked.update(hits)
    if unknown:
        raise BenchError(f"--images: no image named {', '.join(unknown)} in {src} "
                         f"(names are file stems such as {images[0].stem})")
    return [p for p in images if p in picked]


def measure(cfg: RunConfig, codecs: list[BenchCodec], images: list[Path]) -> list[dict]:
    """Run every codec at every setting on every image; one record per run.
    Images are the outer loop so that a slow spell of a shared machine spreads
    over all codecs instead of landing on one. With --jobs N, the slow codecs'
    runs go first, N at a time in worker processes."""
    from ..image_io import load_image

    records: list[dict] = []
    if cfg.jobs > 1 and any(c.slow for c in codecs):
        records += _measure_pooled(cfg, [c for c in codecs if c.slow], images)
        codecs = [c for c in codecs if not c.slow]
    for i, path in enumerate(images):
        try:
            pixels = load_image(path).pixels
        except ValueError as exc:  # ImageError: already "path: reason"
            raise BenchError(str(exc)) from None
        line = []
        for codec in codecs:
            settings = codec.quick_settings if cfg.quick else codec.settings
            if i == 0 and not cfg.quick and not codec.slow:
                # warm-up, not recorded: first calls pay for allocation, kernel
                # selection and lazy library loading (minutes wasted on a slow codec)
                _run_one(codec, pixels, settings[0], path)
            t_codec = time.perf_counter()
            for setting in settings:
                records.append(_record(codec, path, pixels, setting))
            line.append(f"{codec.key} {time.perf_counter() - t_codec:.1f}s")
        click.echo(f"[{i + 1}/{len(images)}] {path.name}: {', '.join(line)}", err=True)
    return records


def _record(codec: BenchCodec, path: Path, pixels: np.ndarray, setting: float) -> dict:
    h, w = pixels.shape[:2]
    m = _run_one(codec, pixels, setting, path)
    record = {
        "image": path.name, "codec": codec.key, "setting": json_num(setting),
        "width": w, "height": h, "bytes": m.nbytes,
        "bpp": 8.0 * m.nbytes / (w * h),
        "psnr-rgb": psnr_rgb(pixels, m.pixels),
        "ms-ssim-rgb": ms_ssim_rgb(pixels, m.pixels),
        "encoding_time": m.enc_s, "decoding_time": m.dec_s,
    }
    if codec.slow:  # minutes per run: say how it went, run by run
        click.echo(f"  {path.name} {codec.key} {codec.param} {fmt_setting(setting)}: "
                   f"{record['bpp']:.3f} bpp, {record['psnr-rgb']:.2f} dB, "
                   f"encode {m.enc_s:.1f}s", err=True)
    return record


# Worker processes of --jobs: each builds the slow codecs once, from the run config.
_WORKER_CODECS: dict[str, BenchCodec] = {}


def _worker_init(cfg: RunConfig, families: tuple[str, ...], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    quiet = replace(cfg, codecs=families, notes=[])
    _WORKER_CODECS.update({c.key: c for c in build_codecs(quiet)})


def _worker_run(key: str, path: Path, setting: float) -> dict:
    from ..image_io import load_image

    return _record(_WORKER_CODECS[key], path, load_image(path).pixels, setting)


def _measure_pooled(cfg: RunConfig, codecs: list[BenchCodec], images: list[Path]) -> list[dict]:
    """The slow codecs' runs, cfg.jobs at a time (spawned processes: safe with CUDA),
    each with threads / jobs torch threads; records come back in a fixed order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(c.key, path, setting) for path in images for c in codecs
             for setting in (c.quick_settings if cfg.quick else c.settings)]
    families = tuple(dict.fromkeys(c.family for c in codecs))
    threads = max(1, cfg.threads // cfg.jobs)
    note(cfg.notes, f"--jobs {cfg.jobs}: {', '.join(c.key for c in codecs)} ran {cfg.jobs} "
                    f"runs at a time ({threads} torch thread(s) each); their encode times "
                    "are per run, under that contention")
    click.echo(f"{len(tasks)} slow runs, {cfg.jobs} at a time", err=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(cfg.jobs, mp_context=context, initializer=_worker_init,
                             initargs=(cfg, families, threads)) as pool:
        futures = [pool.submit(_worker_run, *task) for task in tasks]
        return [f.result() for f in futures]


def _run_one(codec: BenchCodec, pixels: np.ndarray, setting: float, path: Path) -> Measurement:
    try:
        return codec.run(pixels, setting)
    except Exception as exc:  # noqa: BLE001 - any library failure becomes one line
        raise BenchError(f"{codec.name} failed on {path.name} at {codec.param} "
                         f"{fmt_setting(setting)}: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------ aggregation
def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def aggregate(records: list[dict], codec: BenchCodec, image_names: bool = False) -> dict:
    """CompressAI's results format for one codec: per setting, the mean over
    images of bpp, PSNR (mean of per-image PSNR), MS-SSIM and the two times.
    `image_names`: list the images too (when --images picked them)."""
    mine = [r for r in records if r["codec"] == codec.key]
    settings = sorted({r["setting"] for r in mine})
    results: dict[str, list] = {k: [] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb",
                                                "encoding_time", "decoding_time")}
    for s in settings:
        rows = [r for r in mine if r["setting"] == s]
        for k in results:
            results[k].append(_mean([r[k] for r in rows]))
    out = {
        "name": codec.name,
        "description": codec.description,
        "settings": {"param": codec.param, "values": [json_num(s) for s in settings]},
        "images": len({r["image"] for r in mine}),
        "results": results,
    }
    if image_names:
        out["image_names"] = list(dict.fromkeys(r["image"] for r in mine))
    if codec.steps is not None:
        out["steps"] = codec.steps
    return out


# ------------------------------------------------------------------ the run
def _is_result_file(stem: str) -> bool:
    """<codec>.json as a run writes it: a CODECS key, segpic-cuda, or a key with a
    step budget ("moric-1k")."""
    if stem in CODECS or stem == "segpic-cuda":
        return True
    key, _, tail = stem.rpartition("-")
    return key in CODECS and tail.rstrip("k").replace(".", "", 1).isdigit()


def run_bench(cfg: RunConfig) -> dict:
    """Measure, then write <out>/{<codec>.json, per_image.json, summary.json,
    results.md, rd.png}. Returns the summary."""
    images = source_images(cfg.src)
    if cfg.images:
        images = select_images(images, cfg.images, cfg.src)
    try:
        import matplotlib  # noqa: F401
        import pytorch_msssim  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"{exc.name} is not installed: pip install -e '.[bench]'") from None
    import torch

    if cfg.limit is not None:
        images = images[: cfg.limit]
    torch.set_num_threads(cfg.threads)
    load_start = loadavg()
    try:
        if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
            note(cfg.notes, f"the machine is busy (load {load_start}): timings will be noisy"
                 + ("" if os.environ.get("OMP_WAIT_POLICY") else
                    "; on a shared CPU set OMP_WAIT_POLICY=PASSIVE, torch threads that "
                    "spin-wait against another job can run several times slower"))
    except OSError:
        pass
    anchors = load_anchors(cfg.anchors)
    if cfg.images or cfg.limit is not None:  # a subset: the per-image curves on it
        anchors.update(per_image_anchors(cfg.anchors, [p.stem for p in images]))
    if cfg.anchors is not None and not anchors:
        note(cfg.notes, f"no published curves in {display_path(cfg.anchors)}: "
                        "no BD-rate against VTM")
    codecs = build_codecs(cfg)
    click.echo(f"segpic bench: {len(images)} image(s), {', '.join(c.key for c in codecs)}, "
               f"{cfg.threads} thread(s) -> {display_path(cfg.out)}", err=True)
    records = measure(cfg, codecs, images)
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {cfg.out}: {exc.strerror or exc}") from None
    results = {c.key: aggregate(records, c, image_names=bool(cfg.images)) for c in codecs}
    if cfg.quick:
        cfg.notes.append(f"--quick: {len(images)} image(s) and 2-4 settings per codec; "
                         "no warm-up run; a smoke test, not a measurement")
    if cfg.images:
        cfg.notes.append(f"--images: only {', '.join(p.stem for p in images)}, the same "
                         "for every codec")
    env = environment(cfg, images, load_start)
    summary = build_summary(cfg, codecs, results, records, anchors, env)
    summary["notes"] = cfg.notes
    # a folder holds one run: drop codec files an earlier run left behind
    for stale in sorted(cfg.out.glob("*.json")):
        if _is_result_file(stale.stem) and stale.stem not in results:
            stale.unlink()
    for key, res in results.items():
        write_json(cfg.out / f"{key}.json", res)
    write_json(cfg.out / "per_image.json", {"environment": env, "records": records})
    write_json(cfg.out / "summary.json", summary)
    title = (f"{env['source_name']} ({len(images)} images): RGB PSNR vs bpp; "
             "solid: measured here, dashed: published")
    plot_rd(cfg.out / "rd.png", codecs, results, anchors, title)
    write_markdown(cfg.out / "results.md", cfg, codecs, summary)
    return summary

"""`segpic bench speed`: how fast and how big, one JSON line per measurement.

    steps     MoRIC's seconds per optimisation step (three ways of using two
              cores) and its decode time
    layered   MoRIC's layered decoding: one region against the full decode
    memory    peak memory and time of encode and decode of a large image, each
              phase in a fresh process
    process   whole-process times of `segpic encode`, `decode` and `info`
    decode    whole-process decode times of .spic files against another commit,
              beside WebP, AVIF and JPEG XL through Pillow (`decode_speed`)
    batch     images per hour of `segpic batch` with 1, 2, ... workers

Times are wall clock, minimum and median over repeats (the machine may be
shared). What needs MoRIC's insides comes from its measure hooks.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import shared_data
from .common import REPO, BenchError, codec_measure

CONTEXT = {"help_option_names": ["-h", "--help"]}
SPEED_IMAGE = "kodim23"  # the Kodak image the speed measurements use by default


def _emit(row: dict[str, Any]) -> None:
    click.echo(json.dumps(row))


def _pixels(path: Path) -> np.ndarray:
    from ..image_io import load_image

    try:
        return np.array(load_image(path).pixels)  # writable: torch.from_numpy needs it
    except ValueError as exc:  # ImageError: "path: reason"
        raise BenchError(str(exc)) from None


def _parse_ints(value: str, option: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise BenchError(f"{option} {value}: give positive whole numbers separated by commas")
    return out


def _default_results(*parts: str) -> Path:
    """bench/results/... of the checkout, or of the current folder without one."""
    base = REPO if shared_data.checkout_root() is not None else Path.cwd()
    return base.joinpath("bench", "results", *parts)


@click.group("speed", context_settings=CONTEXT)
def speed() -> None:
    """Step, encode and decode times, whole-process times, batch throughput, peak memory."""


IMAGE_ARG = click.argument("image", type=click.Path(path_type=Path, exists=True,
                                                    dir_okay=False))


@speed.command("steps", context_settings=CONTEXT)
@IMAGE_ARG
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--features", type=click.IntRange(min=1), default=None,
              help="Synthesis width (default: the medium preset's).")
@click.option("--modes", default="two-core,one-thread,omp2", show_default=True,
              help="two-core: rate and distortion on two threads, one intra-op thread each "
                   "(the default on a CPU); one-thread; omp2: PyTorch's own two threads.")
@click.option("--regions", default="1", show_default=True, metavar="LIST",
              help="Region counts to time (auto partitions), comma separated.")
@click.option("--no-decode", is_flag=True, help="Skip the decode times.")
def steps(image: Path, repeats: int, features: int | None, modes: str, regions: str,
          no_decode: bool) -> None:
    """MoRIC on the CPU: seconds per optimisation step, and decode time."""
    hooks = codec_measure("moric")
    features = features or hooks.default_features()
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    bad = sorted(set(mode_list) - {"two-core", "one-thread", "omp2"})
    if bad or not mode_list:
        raise BenchError(f"--modes: unknown mode(s) {', '.join(bad) or '(none)'}; "
                         "choose from two-core,one-thread,omp2")
    pixels = _pixels(image)
    h, w = pixels.shape[:2]
    for count in _parse_ints(regions, "--regions"):
        for mode in mode_list:
            t = hooks.step_seconds(pixels, mode, features, repeats, count)
            _emit({"image": image.stem, "size": [w, h], "mode": mode, "regions": count,
                   "features": features, "s_per_step_min": round(min(t), 3),
                   "s_per_step_median": round(statistics.median(t), 3)})
    if not no_decode:
        t = hooks.decode_seconds(pixels, 3)
        _emit({"image": image.stem, "decode_s_min": round(min(t), 3),
               "decode_s_median": round(statistics.median(t), 3)})


@speed.command("profile", context_settings=CONTEXT)
@IMAGE_ARG
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--features", type=click.IntRange(min=1), default=None,
              help="Synthesis width (default: the medium preset's).")
@click.option("--regions", default="1", show_default=True, metavar="LIST",
              help="Region counts to profile (auto partitions), comma separated.")
def profile(image: Path, repeats: int, features: int | None, regions: str) -> None:
    """MoRIC on the CPU: where a one-thread optimisation step spends its time
    (upsampling, ARM rate, synthesis, gradient sums and backward, quantiser,
    optimiser), in seconds per step and as shares of the step."""
    hooks = codec_measure("moric")
    features = features or hooks.default_features()
    pixels = _pixels(image)
    h, w = pixels.shape[:2]
    for count in _parse_ints(regions, "--regions"):
        seconds = hooks.step_profile(pixels, features, repeats, count)
        step = seconds["step"]
        _emit({"image": image.stem, "size": [w, h], "regions": count, "features": features,
               "s_per_step": round(step, 4),
               "seconds": {k: round(v, 4) for k, v in seconds.items() if k != "step"},
               "share": {k: round(v / step, 3) for k, v in seconds.items() if k != "step"}})


@speed.command("layered", context_settings=CONTEXT)
@IMAGE_ARG
@click.option("--steps", "n_steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="Encoder steps (decode time does not depend on them).")
@click.option("--regions", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
def layered(image: Path, n_steps: int, regions: int, repeats: int) -> None:
    """MoRIC's layered decoding: each region alone against the full decode."""
    hooks = codec_measure("moric")
    for row in hooks.layered_decode_rows(_pixels(image), n_steps, regions, repeats):
        _emit({"image": image.stem, **row})


# ------------------------------------------------------------------ memory
def _large_image(source: Path | None, width: int, height: int) -> np.ndarray:
    """The source upscaled (bicubic) to width x height, or a smooth synthetic
    image without one."""
    if source is not None:
        from PIL import Image

        img = Image.fromarray(_pixels(source)).resize((width, height),
                                                      Image.Resampling.BICUBIC)
        return np.asarray(img)
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 255 // width), (y * 255 // height), ((x + y) % 256)],
                    axis=2).astype(np.uint8)


def _memory_phase(codec: str, phase: str, workdir: Path, quality: float, n_steps: int,
                  threads: int) -> None:
    """One phase in this (fresh) process; prints its line."""
    import torch

    from .. import codecs as registry
    from ..image_io import save_png

    torch.set_num_threads(threads)
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if phase == "encode":
        pixels = np.load(workdir / "pixels.npy")
        options: dict[str, Any] = {"steps": n_steps} if codec == "moric" else {}
        encoder = registry.load_encoder(codec, device="cpu", **options)
        result = encoder.encode(pixels, quality=quality, reconstruct=False)
        (workdir / "file.spic").write_bytes(result.data)
        extra = {"bytes": len(result.data), "bpp": result.bpp}
    else:
        pixels = registry.decode((workdir / "file.spic").read_bytes(), device="cpu")
        save_png(pixels, workdir / "decoded.png")  # as `segpic decode` does
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    click.echo(json.dumps({"codec": codec, "phase": phase, "seconds": round(seconds, 1),
                           "peak_rss_mib": round(peak_kib / 1024),
                           "peak_gib": round(peak_kib / 2**20, 3), **extra}))


@speed.command("memory", context_settings=CONTEXT)
@click.option("--codec", default="segpic", show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=3840, show_default=True)
@click.option("--height", type=click.IntRange(min=1), default=2160, show_default=True)
@click.option("--quality", type=float, default=3.5, show_default=True)
@click.option("--steps", "n_steps", type=click.IntRange(min=1), default=3, show_default=True,
              help="Encoder steps of a codec that optimises per image (moric).")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--image", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help=f"Image to upscale (default: Kodak's {SPEED_IMAGE} when the "
                                 "shared data is there, else a synthetic one).")
@click.option("--phase", type=click.Choice(["encode", "decode"]), default=None, hidden=True)
@click.option("--workdir", type=click.Path(path_type=Path), default=None, hidden=True)
def memory(codec: str, width: int, height: int, quality: float, n_steps: int, threads: int,
           image: Path | None, phase: str | None, workdir: Path | None) -> None:
    """Peak memory (max RSS) and time of encode and decode of a large image on the
    CPU, each phase in its own process so that its peak is its own. Decode
    includes writing the PNG, as `segpic decode` does."""
    if phase is not None and workdir is not None:
        _memory_phase(codec, phase, workdir, quality, n_steps, threads)
        return
    if image is None:
        image = shared_data.kodak_image(SPEED_IMAGE, required=False)
        if image is not None and not image.is_file():
            image = None
    with tempfile.TemporaryDirectory(prefix="segpic-memory-") as tmp:
        np.save(Path(tmp) / "pixels.npy", _large_image(image, width, height))
        for step in ("encode", "decode"):
            cmd = [sys.executable, "-m", "segpic_codec.bench", "speed", "memory",
                   "--codec", codec, "--quality", str(quality), "--steps", str(n_steps),
                   "--threads", str(threads), "--phase", step, "--workdir", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                raise BenchError(f"{codec} {step} failed: {last}")
            click.echo(proc.stdout.strip())


# ------------------------------------------------------------------ process
def _run_once(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process running `args`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed ({proc.returncode}): "
                         f"{(err.strip().splitlines() or ['?'])[-1]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KB


@speed.command("process", context_settings=CONTEXT)
@IMAGE_ARG
@click.option("--quality", default="3", show_default=True)
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--large", is_flag=True, help="Also a 3840x2160 resize (Lanczos), one run.")
@click.option("--only-large", is_flag=True, help="Only the 3840x2160 resize, --runs runs.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Append the JSON lines here (default: "
                   "bench/results/segpic-cpu-speed/process_times.jsonl).")
def process(image: Path, quality: str, runs: int, large: bool, only_large: bool,
            out: Path | None) -> None:
    """Whole-process times of `segpic encode`, `decode` and `info` on one image,
    each a fresh process (start, imports, weights, coding, file I/O), median of
    --runs, with each process's peak resident memory."""
    out = out if out is not None else _default_results("segpic-cpu-speed",
                                                        "process_times.jsonl")
    exe = shutil.which("segpic")
    base = [exe] if exe else [sys.executable, "-m", "segpic_codec"]
    cases = [] if only_large else [(image.name, image, runs)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if large or only_large:
            from PIL import Image

            big = Path(tmp) / f"{image.stem}-3840x2160.png"
            Image.fromarray(_pixels(image)).resize((3840, 2160),
                                                   Image.Resampling.LANCZOS).save(big)
            cases.append((big.name, big, runs if only_large else 1))
        for label, path, n in cases:
            spic, png = Path(tmp) / "out.spic", Path(tmp) / "out.png"
            for name, cmd in (
                ("encode", ["encode", str(path), str(spic), "--quality", quality,
                            "--device", "cpu"]),
                ("decode", ["decode", str(spic), str(png), "--device", "cpu"]),
                ("info", ["info", str(spic)]),
            ):
                walls, peaks = zip(*(_run_once(base + cmd) for _ in range(n)), strict=True)
                row = {"command": name, "image": label, "runs": n,
                       "median_s": round(statistics.median(walls), 3),
                       "min_s": round(min(walls), 3), "peak_mb": round(max(peaks), 1),
                       "quality": quality, "cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
                rows.append(row)
                click.echo(f"{label:28s} {name:7s} median {row['median_s']:7.2f} s  "
                           f"min {row['min_s']:7.2f} s  peak {row['peak_mb']:7.0f} MB")
    for row in rows:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


@speed.command("decode", context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--against", metavar="COMMIT", default=None,
              help="Also decode with this commit of the checkout, interleaved run by run.")
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--image", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="Also time WebP, AVIF and JPEG XL decodes of this image.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Append the JSON lines here (default: "
                   "bench/results/moric-decode-speed/decode_times.jsonl).")
def decode(files: tuple[Path, ...], against: str | None, runs: int, image: Path | None,
           out: Path | None) -> None:
    """Whole-process decode times and peak memory of .spic files (`segpic decode`
    in a fresh process, to PNG), median of --runs."""
    from .decode_speed import measure

    out = out if out is not None else _default_results("moric-decode-speed",
                                                        "decode_times.jsonl")
    rows = measure(list(files), against, runs, image)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
            if "error" in row:
                click.echo(f"{row['file']:34s} {row['decoder']:20s} cannot decode it: "
                           f"{row['error']}")
                continue
            ratio = f"  x{row['ratio_to_other']}" if "ratio_to_other" in row else ""
            click.echo(f"{row['file']:34s} {row['decoder']:20s} median {row['median_s']:6.3f} s"
                       f"  min {row['min_s']:6.3f} s  peak {row['peak_mib']:6.0f} MiB{ratio}")


# ------------------------------------------------------------------ batch
def _batch_once(images: list[Path], codec: str, jobs: int, executor: str,
                codec_args: list[str]) -> dict[str, Any]:
    """One `segpic batch` over `images` (linked into a scratch folder), wall clock
    around the whole command (start-up, model loading and the stop included)."""
    with tempfile.TemporaryDirectory(prefix="segpic-throughput-") as scratch:
        src, dst = Path(scratch) / "src", Path(scratch) / "dst"
        src.mkdir()
        for path in images:  # a link, not a copy: only these images, none of the rest
            os.symlink(path.resolve(), src / path.name)
        command = [sys.executable, "-m", "segpic_codec", "batch", str(src), str(dst),
                   "--codec", codec, "--jobs", str(jobs), "--executor", executor,
                   *codec_args]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        sizes = [p.stat().st_size for p in dst.rglob("*.spic")] if dst.is_dir() else []
    if proc.returncode != 0:
        # batch's summary (stdout) when it ran, else its one-line error (stderr)
        lines = proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines()[-1:]
        click.echo(f"jobs={jobs}: exit code {proc.returncode}: " + "; ".join(lines or ["?"]),
                   err=True)
    done = len(sizes)
    return {"codec": codec, "executor": executor, "jobs": jobs, "images": len(images),
            "done": done, "seconds": round(seconds, 1),
            "images_per_hour": round(done * 3600 / seconds, 2) if seconds else None,
            "mean_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
            "exit_code": proc.returncode, "codec_args": codec_args,
            "cpus": os.cpu_count(), "machine": platform.node(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


@speed.command("batch", context_settings=CONTEXT)
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--codec", default="moric", show_default=True)
@click.option("--jobs", default="1,2", show_default=True, help="Worker counts, comma separated.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="ray: a local Ray cluster with --jobs CPUs.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N images.")
@click.option("--codec-args", default="",
              help='More batch options, one string (e.g. "--preset fast -q 3").')
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Append one JSON line per run here.")
def batch(folder: Path, codec: str, jobs: str, executor: str, limit: int | None,
          codec_args: str, out: Path | None) -> None:
    """Images per hour of `segpic batch` with each --jobs count: the same images
    into a fresh folder each time. Prints a markdown table row per run."""
    from ..image_io import list_images

    images = list_images(folder)
    images = images[:limit] if limit else images
    if not images:
        raise BenchError(f"{folder}: no images")
    counts = _parse_ints(jobs, "--jobs")
    click.echo("| codec | executor | jobs | images | seconds | images/hour |")
    click.echo("|---|---|---:|---:|---:|---:|")
    for n in counts:
        row = _batch_once(images, codec, n, executor, shlex.split(codec_args))
        click.echo(f"| {row['codec']} {' '.join(row['codec_args'])} | {row['executor']} | "
                   f"{n} | {row['done']}/{row['images']} | {row['seconds']} | "
                   f"{row['images_per_hour']} |")
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")


"""The `segpic` command line."""

from __future__ import annotations

import errno
import functools
import json
import os
import signal
import stat
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import container
from .codec import Codec, CodecError, EncodeResult
from .config import CONFIGS, DEFAULT_CONFIG, max_pixels
from .data import IMAGE_SUFFIXES
from .errors import SegpicError
from .image_io import atomic_write_bytes, load_image, remove_stale_temp_files, save_png
from .weights import WeightsError

console = Console(stderr=True)
# SegpicError covers ContainerError, CodecError, StreamError and ImageError
EXPECTED_ERRORS = (SegpicError, WeightsError, click.ClickException)
# Errors after which every further write in a batch would fail the same way
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS} | (
    {errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())


EXIT_USAGE = 2  # bad input, bad file, missing weights: the user can fix it
EXIT_FAILED = 1  # batch: some files failed; or an unexpected internal error


def _error(message: str, code: int = EXIT_USAGE) -> None:
    console.print(f"[bold red]segpic: error:[/] {escape(message)}", highlight=False,
                  soft_wrap=True)
    raise SystemExit(code)


def _warn(message: str) -> None:
    console.print(f"[yellow]segpic: warning:[/] {escape(message)}", highlight=False,
                  soft_wrap=True)


def handle_errors(func):
    """Turn every failure into one line on stderr and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            max_pixels()  # a bad SEGPIC_MAX_PIXELS is a usage error, reported up front
        except ValueError as exc:
            _error(str(exc))
        try:
            return func(*args, **kwargs)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            _error("interrupted", 130)
        except EXPECTED_ERRORS as exc:
            _error(str(exc))
        except OSError as exc:
            _error(_os_message(exc))
        except MemoryError:
            _error("out of memory", EXIT_FAILED)
        except Exception as exc:  # noqa: BLE001 - the CLI must never print a traceback
            _error(f"internal error ({type(exc).__name__}: {exc})", EXIT_FAILED)

    return wrapper


def _os_message(exc: OSError) -> str:
    name = f"{exc.filename}: " if exc.filename else ""
    return f"{name}{exc.strerror or exc}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="segpic")
def main() -> None:
    """segpic: a learned image codec (SegPIC, ECCV 2024) with real .spic bitstreams.

    \b
      segpic encode photo.png photo.spic --quality 4
      segpic decode photo.spic photo-decoded.png
      segpic info photo.spic
      segpic batch photos/ coded/          (and --decode for the reverse)
    """


def _quality_options(func):
    func = click.option("--bpp", type=float, default=None,
                        help="Target bits per pixel: the highest quality that does not "
                             "exceed it.")(func)
    func = click.option("--quality", "-q", type=float, default=None,
                        help="Quality 1 (smallest) to 6 (best); fractions interpolate. "
                             "Default: the middle (3.5).")(func)
    return func


def _model_options(func):
    func = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                        show_default=True, help="auto uses CUDA when present.")(func)
    func = click.option("--weights", type=click.Path(path_type=Path), default=None,
                        help="Weights folder or manifest (default: the shipped weights).")(func)
    func = click.option("--model", type=click.Choice(sorted(CONFIGS)), default=None,
                        help=f"Model configuration (default: {DEFAULT_CONFIG}, or the "
                             "model of --weights).")(func)
    return func


class _CodecCache:
    """Load weights once per command, per model name (decode follows the file)."""

    def __init__(self, weights: Path | None, device: str):
        self.weights = weights
        self.device = device
        self.loaded: dict[str, Codec] = {}

    def get(self, model: str | None) -> Codec:
        if model not in self.loaded:
            self.loaded[model] = Codec.load(self.weights, model=model, device=self.device)
        return self.loaded[model]


def _check_quality_args(quality: float | None, bpp: float | None) -> None:
    if quality is not None and bpp is not None:
        raise click.UsageError("use either --quality or --bpp, not both")


def _check_output(out: Path) -> None:
    if out.is_dir():
        raise CodecError(f"{out}: is a directory; give a file name")
    if not out.parent.is_dir():
        raise CodecError(f"{out.parent}: output folder does not exist")


def encode_file(codec: Codec, src: Path, dst: Path, quality: float | None, bpp: float | None,
                grid: int) -> EncodeResult:
    image = load_image(src)
    for note in image.notes:
        _warn(note)
    result = codec.encode(image.pixels, quality=quality, bpp=bpp, grid=grid, reconstruct=False)
    atomic_write_bytes(dst, result.data)
    return result


def decode_file(cache: _CodecCache, src: Path, dst: Path) -> np.ndarray:
    data = _read_spic(src)
    header, _, _ = container.read_header(data)
    pixels = cache.get(header.model).decode(data)
    save_png(pixels, dst)
    return pixels


def _read_spic(path: Path) -> bytes:
    if not path.exists():
        raise CodecError(f"{path}: no such file")
    if path.is_dir():
        raise CodecError(f"{path}: is a directory, not a .spic file")
    limit = 64 * max_pixels() // 8 + (1 << 20)  # far above any real file at 64 bpp
    too_large = f"{path}: more than {limit} bytes, too large to be a .spic file"
    if path.stat().st_size > limit:
        raise CodecError(too_large)
    # read at most limit + 1 bytes: a pipe or a device (/dev/zero) has no size to
    # check beforehand and must not fill the memory
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CodecError(too_large)
    return data


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@_quality_options
@click.option("--grid", type=click.IntRange(1, container.MAX_GRID), default=4,
              show_default=True, help="n x n grid of regions replacing the masks.")
@_model_options
@handle_errors
def encode(src: Path, dst: Path, quality: float | None, bpp: float | None, grid: int,
           model: str | None, weights: Path | None, device: str) -> None:
    """Encode an image (PNG, JPEG, ...) into a .spic file."""
    _check_quality_args(quality, bpp)
    _check_output(dst)
    codec = Codec.load(weights, model=model, device=device)
    result = encode_file(codec, src, dst, quality, bpp, grid)
    click.echo(f"{src} -> {dst}: {result.width}x{result.height}, quality {result.quality:g}, "
               f"{len(result.data)} bytes, {result.bpp:.4f} bpp")


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Weights folder or manifest (default: the shipped weights of the "
                   "file's model).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@handle_errors
def decode(src: Path, dst: Path, weights: Path | None, device: str) -> None:
    """Decode a .spic file into a PNG of the original size."""
    _check_output(dst)
    pixels = decode_file(_CodecCache(weights, device), src, dst)
    click.echo(f"{src} -> {dst}: {pixels.shape[1]}x{pixels.shape[0]}")


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def info(src: Path, as_json: bool) -> None:
    """Show the header, stream sizes and bpp of a .spic file (no weights needed)."""
    data = _read_spic(src)
    header, lengths, offset = container.read_header(data)
    names = container.stream_names(len(lengths))
    pixels = header.width * header.height
    summary = {
        "file": str(src),
        "format_version": container.VERSION,
        "model": header.model,
        "weights_id": header.weights_id,
        "quality": header.quality,
        "width": header.width,
        "height": header.height,
        "grid": header.grid,
        "bytes": len(data),
        "bpp": 8 * len(data) / pixels,
        "header_bytes": offset,
        "overhead_bytes": len(data) - sum(lengths),
        "streams": [{"name": n, "bytes": b} for n, b in zip(names, lengths, strict=True)],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    out = Console()
    table = Table(title=f"{src}", show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key in ("format_version", "model", "weights_id", "quality", "width", "height", "grid",
                "bytes", "header_bytes", "overhead_bytes"):
        table.add_row(key, str(summary[key]))
    table.add_row("bpp", f"{summary['bpp']:.4f}")
    for entry in summary["streams"]:
        table.add_row(f"stream {entry['name']}",
                      f"{entry['bytes']} B ({8 * entry['bytes'] / pixels:.4f} bpp)")
    out.print(table)


def _walk(src: Path, suffixes: set[str], failures: list[tuple[str, str]],
          skipped_links: list[Path] | None = None) -> list[Path]:
    """Files under `src` with one of `suffixes`, sorted; symlinked folders are not
    followed (no loops; they are listed in `skipped_links`), unreadable folders are
    reported as failures."""
    found = []

    def onerror(exc: OSError) -> None:
        failures.append((str(exc.filename), _os_message(exc)))

    for root, dirs, files in os.walk(src, onerror=onerror, followlinks=False):
        dirs.sort()
        if skipped_links is not None:
            skipped_links.extend(Path(root) / d for d in dirs if (Path(root) / d).is_symlink())
        for name in sorted(files):
            path = Path(root) / name
            if path.suffix.lower() in suffixes and not name.startswith("."):
                found.append(path)
    return found


def _check_regular(path: Path) -> None:
    """Refuse pipes, devices and sockets in a batch folder: opening a FIFO nobody
    writes to would block the whole run. (Missing files and link loops are left to
    the reader, which names them.)"""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise CodecError(f"{path}: not a regular file (a pipe, device or socket)")


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of a file, None if absent: an atomic write always puts a new
    inode under the name."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


class _Terminated(KeyboardInterrupt):
    """SIGTERM during a batch: stopped like Ctrl-C, with a summary."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


def _plan_jobs(files: list[Path], src: Path, dst: Path, out_suffix: str,
               failures: list[tuple[str, str]]) -> list[tuple[Path, Path]]:
    """(input, output) pairs. Two inputs that map to one output (a.png and a.jpg
    both -> a.spic) would overwrite each other: the later one is reported instead."""
    jobs: list[tuple[Path, Path]] = []
    owner: dict[Path, Path] = {}
    for path in files:
        out = dst / path.relative_to(src).with_suffix(out_suffix)
        if out in owner:
            failures.append((str(path), f"same output {out} as {owner[out]}; rename one"))
            continue
        owner[out] = path
        jobs.append((path, out))
    return jobs


@main.command()
@click.argument("src", type=click.Path(path_type=Path, file_okay=False))
@click.argument("dst", type=click.Path(path_type=Path, file_okay=False))
@click.option("--decode", "decode_mode", is_flag=True,
              help="Decode .spic files to PNG instead of encoding images.")
@click.option("--force", is_flag=True, help="Redo files whose output already exists.")
@_quality_options
@click.option("--grid", type=click.IntRange(1, container.MAX_GRID), default=4,
              show_default=True)
@_model_options
@handle_errors
def batch(src: Path, dst: Path, decode_mode: bool, force: bool, quality: float | None,
          bpp: float | None, grid: int, model: str | None, weights: Path | None,
          device: str) -> None:
    """Encode a folder tree of images into the same tree of .spic files (or --decode).

    Outputs are written to a temporary file (.NAME.PID.XXXXXXXX.part beside the
    output) and renamed, so an interrupted run never leaves a partial file; a rerun
    skips what is done. Temporary files left in DST by a killed run (kill -9, power
    loss) are deleted at the start. One broken file is reported and the rest still
    processed; a full disk stops the run. Ctrl-C or SIGTERM stop after a summary.
    Symlinked folders are not followed. Exit code: 0 all done, 1 some files failed,
    130/143 interrupted.
    """
    _check_quality_args(quality, bpp)
    if not src.is_dir():
        raise CodecError(f"{src}: not a folder")
    if dst.exists() and not dst.is_dir():
        raise CodecError(f"{dst}: exists and is not a folder")
    failures: list[tuple[str, str]] = []
    suffixes = {".spic"} if decode_mode else IMAGE_SUFFIXES
    out_suffix = ".png" if decode_mode else ".spic"
    dst.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temp_files(dst, suffixes=(".spic", ".png"))
    if stale:
        _warn(f"removed {len(stale)} temporary file(s) left in {dst} by an interrupted run")
    links: list[Path] = []
    files = _walk(src, suffixes, failures, links)
    for link in links:
        _warn(f"{link}: symlinked folder, not followed")
    jobs = _plan_jobs(files, src, dst, out_suffix, failures)
    todo = [(a, b) for a, b in jobs if force or not b.exists()]
    skipped = len(jobs) - len(todo)
    done = failed = 0
    current: tuple[Path, tuple[int, int] | None] | None = None  # output in progress
    stopped: str | None = None  # why the run ended early
    exit_code = EXIT_FAILED
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (embedded use): keep the default
        pass
    try:
        cache = _CodecCache(weights, device)
        codec = None if decode_mode or not todo else cache.get(model)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console) as progress:
            task = progress.add_task("decoding" if decode_mode else "encoding",
                                     total=len(todo))
            for path, out in todo:
                current = (out, _identity(out))
                try:
                    _check_regular(path)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if decode_mode:
                        decode_file(cache, path, out)
                    else:
                        encode_file(codec, path, out, quality, bpp, grid)
                    done += 1
                except KeyboardInterrupt:
                    raise
                except (*EXPECTED_ERRORS, OSError, ValueError, MemoryError) as exc:
                    message = _os_message(exc) if isinstance(exc, OSError) else str(exc)
                    message = message.removeprefix(f"{path}: ")  # listed with its path
                    failures.append((str(path), message))
                    failed += 1
                    progress.console.print(f"[red]failed[/] {escape(str(path))}: "
                                           f"{escape(message)}", highlight=False,
                                           soft_wrap=True)
                    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
                        stopped = f"stopped after: {exc.strerror or message}"
                        break
                progress.advance(task)
    except KeyboardInterrupt as exc:
        # the signal may land after the file in progress was renamed into place but
        # before it was counted: count it if its output is now a new file
        if current is not None and _identity(current[0]) not in (None, current[1]):
            done += 1
        terminated = isinstance(exc, _Terminated)
        stopped = "terminated" if terminated else "interrupted"
        exit_code = 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary = f"{done} done, {skipped} skipped (already done), {len(failures)} failed"
    if stopped:
        summary += f", {len(todo) - done - failed} not done ({stopped}; rerun to finish them)"
    click.echo(summary)
    for path, message in failures:
        click.echo(f"  failed: {path}: {message}")
    if failures or stopped:
        raise SystemExit(exit_code)


@main.command()
@click.option("--data", "data", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, help="Folder of training images (+ masks/<stem>.png) or a pack.")
@click.option("--run-dir", type=click.Path(path_type=Path), required=True,
              help="Where checkpoints, log.jsonl and exported weights go.")
@click.option("--model", type=click.Choice(sorted(CONFIGS)), default=DEFAULT_CONFIG,
              show_default=True)
@click.option("--steps", type=int, default=1_000_000, show_default=True)
@click.option("--time-budget", type=float, default=0.0,
              help="Stop after this many seconds of training (cumulative over resumes).")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--warmup-steps", type=int, default=500, show_default=True)
@click.option("--masks", type=click.Choice(["auto", "grid"]), default="auto", show_default=True,
              help="auto: ground-truth or unsupervised masks; grid: grid partitions (ablation).")
@click.option("--grid", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast on CUDA.")
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True)
@click.option("--init", type=click.Path(path_type=Path, exists=True), default=None,
              help="Start from these weights (a weights folder or manifest).")
@click.option("--resume/--no-resume", default=True, show_default=True)
@click.option("--log-every", type=int, default=50, show_default=True)
@click.option("--checkpoint-every", type=float, default=300.0, show_default=True)
@click.option("--eval-dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Evaluate on these images with real bitstreams.")
@click.option("--eval-every", type=int, default=0, show_default=True)
@click.option("--eval-images", type=int, default=24, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@handle_errors
def train(**kwargs) -> None:
    """Train a variable-rate SegPIC model."""
    from .train import TrainOptions
    from .train import train as run

    kwargs["compile"] = kwargs.pop("compile_")
    run(TrainOptions(**kwargs), console=console)


def _register_bench() -> None:
    """`segpic bench` lives in bench.py; its errors get the same one-line form."""
    from .bench import bench as bench_command

    bench_command.callback = handle_errors(bench_command.callback)
    main.add_command(bench_command, name="bench")


_register_bench()


if __name__ == "__main__":
    sys.exit(main())

"""`segpic batch`: a folder tree in, the same tree out; durable and restartable."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import CodecError
from ..image_io import IMAGE_SUFFIXES, remove_stale_temp_files
from .base import (
    DISK_ERRNOS,
    EXIT_FAILED,
    EXPECTED_ERRORS,
    DecoderCache,
    EncoderSetup,
    check_quality_args,
    codec_options,
    console,
    decode_file,
    encode_file,
    handle_errors,
    main,
    os_message,
    quality_options,
    strip_option,
    warn,
)


def _walk(src: Path, suffixes: set[str], failures: list[tuple[str, str]],
          skipped_links: list[Path] | None = None) -> list[Path]:
    """Files under `src` with one of `suffixes`, sorted; symlinked folders are not
    followed (no loops; they are listed in `skipped_links`), unreadable folders are
    reported as failures."""
    found = []

    def onerror(exc: OSError) -> None:
        failures.append((str(exc.filename), os_message(exc)))

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
@quality_options
@codec_options
@strip_option
@handle_errors
def batch(src: Path, dst: Path, decode_mode: bool, force: bool, quality: float | None,
          bpp: float | None, codec: str, steps: int | None, time_limit: float | None,
          preset: str | None, grid: int | None, model: str | None, weights: Path | None,
          device: str, regions: str | None, region_count: int | None,
          roi: Path | None, strip: bool) -> None:
    """Encode a folder tree of images into the same tree of .spic files (or --decode).

    Outputs are written to a temporary file (.NAME.PID.XXXXXXXX.part beside the
    output) and renamed, so an interrupted run never leaves a partial file; a rerun
    skips what is done. Temporary files left in DST by a killed run (kill -9, power
    loss) are deleted at the start. One broken file is reported and the rest still
    processed; a full disk stops the run. Ctrl-C or SIGTERM stop after a summary.
    Symlinked folders are not followed. Exit code: 0 all done, 1 some files failed,
    130/143 interrupted.
    """
    check_quality_args(quality, bpp)
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
        warn(f"removed {len(stale)} temporary file(s) left in {dst} by an interrupted run")
    links: list[Path] = []
    files = _walk(src, suffixes, failures, links)
    for link in links:
        warn(f"{link}: symlinked folder, not followed")
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
        cache = DecoderCache(weights, device)
        setup = EncoderSetup(codec, device, grid=grid, model=model, weights=weights,
                             steps=steps, time_limit=time_limit, preset=preset,
                             regions=regions, region_count=region_count, roi=roi)
        if not decode_mode and todo:
            setup.encoder()  # missing weights: one error up front, not one per file
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
                        decode_file(cache, path, out, strip=strip)
                    else:
                        encode_file(setup, path, out, quality, bpp, strip)
                    done += 1
                except KeyboardInterrupt:
                    raise
                except (*EXPECTED_ERRORS, OSError, ValueError, MemoryError) as exc:
                    message = os_message(exc) if isinstance(exc, OSError) else str(exc)
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


"""`segpic batch`: a folder tree in, the same tree out; durable and restartable."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

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

from ..cores import usable_cores
from ..errors import CodecError
from ..image_formats import BY_EXTENSION, FORMATS
from ..image_io import IMAGE_SUFFIXES, remove_stale_temp_files
from .base import (
    EXIT_FAILED,
    check_quality_args,
    codec_options,
    handle_errors,
    main,
    os_message,
    output_format_options,
    quality_options,
    stderr_console,
    strip_option,
    warn,
)
from .batch_worker import BatchOptions, Coders, FileTask, codec_option_items
from .executors import InlineRunner, ProcessRunner, Runner, remove_partial_outputs
from .files import ImageOutput


def make_runner(executor: str, jobs: int | None, address: str | None,
                coders: Coders) -> Runner:
    """The runner for the options of `segpic batch`; `coders`: this process's encoder
    and decoders (the in-process runner uses them)."""
    if executor == "ray":
        from .ray_executor import RayRunner  # raises the one-line error without Ray

        return RayRunner(address=address, num_cpus=jobs)
    if jobs is None or jobs == 1:
        return InlineRunner(coders)
    # N workers x threads each stay within the cores: oversubscribed, they slow
    # each other down
    return ProcessRunner(jobs, threads=max(1, usable_cores() // jobs))


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
              help="Decode .spic files to images (PNG, or --format) instead of encoding "
                   "images.")
@click.option("--force", is_flag=True, help="Redo files whose output already exists.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Files coded at once: N local worker processes (default: one file at "
                   "a time in this process); with --executor ray, the CPUs of the local "
                   "Ray cluster [default: all].")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="ray: one task per file on a Ray cluster (--address, or a local one "
                   "started for the run); needs the cluster extra.")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="--executor ray: the cluster to join (its nodes need segpic and the "
                   "folders at the same paths); default: start a local one.")
@quality_options
@codec_options
@output_format_options
@strip_option
@handle_errors
def batch(src: Path, dst: Path, decode_mode: bool, force: bool, jobs: int | None,
          executor: str, address: str | None, quality: float | None,
          bpp: float | None, size: int | None, psnr: float | None, best_effort: bool | None,
          codec: str, device: str, output_format: str | None, jpeg_quality: int,
          webp_quality: int | None, strip: bool, **options: Any) -> None:
    """Encode a folder tree of images into the same tree of .spic files (or --decode).

    Outputs are written to a temporary file (.NAME.PID.XXXXXXXX.part beside the
    output) and renamed, so an interrupted run never leaves a partial file; a rerun
    skips what is done. Temporary files left in DST by a killed run (kill -9, power
    loss) are deleted at the start. One broken file is reported and the rest still
    processed; a full disk stops the run. Ctrl-C or SIGTERM stop after a summary.
    Symlinked folders are not followed. With --jobs or --executor ray, a file whose
    worker dies is tried again on another one, then reported. Exit code: 0 all
    done, 1 some files failed, 130/143 interrupted.
    """
    best_effort = bool(best_effort)
    check_quality_args(quality, bpp, size, psnr, best_effort, None if decode_mode else codec)
    if decode_mode and any(v is not None for v in (quality, bpp, size, psnr)):
        raise click.UsageError("--quality and the targets apply to encoding, not --decode")
    if not decode_mode and (output_format is not None or webp_quality is not None):
        raise click.UsageError("--format and --webp-quality apply to --decode")
    if address is not None and executor != "ray":
        raise click.UsageError("--address applies to --executor ray")
    if address is not None and jobs is not None:
        raise click.UsageError("--jobs sizes a local Ray cluster; with --address the "
                               "cluster's CPUs decide")
    if not src.is_dir():
        raise CodecError(f"{src}: not a folder")
    if dst.exists() and not dst.is_dir():
        raise CodecError(f"{dst}: exists and is not a folder")
    options = BatchOptions(decode=decode_mode, codec=codec, device=device, quality=quality,
                           bpp=bpp, codec_options=codec_option_items(options), strip=strip,
                           size=size, psnr=psnr, best_effort=best_effort,
                           output=ImageOutput(output_format, jpeg_quality, webp_quality))
    coders = Coders()
    runner = make_runner(executor, jobs, address, coders)  # no Ray: one error, up front
    failures: list[tuple[str, str]] = []
    suffixes = {".spic"} if decode_mode else IMAGE_SUFFIXES
    out_suffix = ".spic"
    if decode_mode:  # --format names the outputs' extension: a.spic -> a.jpg
        out_suffix = (FORMATS[output_format] if output_format else FORMATS["png"]).extensions[0]
    dst.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temp_files(dst, suffixes=(".spic", *BY_EXTENSION))
    if stale:
        warn(f"removed {len(stale)} temporary file(s) left in {dst} by an interrupted run")
    links: list[Path] = []
    files = _walk(src, suffixes, failures, links)
    for link in links:
        warn(f"{link}: symlinked folder, not followed")
    jobs_planned = _plan_jobs(files, src, dst, out_suffix, failures)
    tasks = [FileTask(a, b, options) for a, b in jobs_planned if force or not b.exists()]
    skipped = len(jobs_planned) - len(tasks)
    # what each output was before: a file that lands after the run was told to stop
    # (renamed into place just before the signal) is a new file, and counts as done
    before = {task.out: _identity(task.out) for task in tasks}
    done = failed = 0
    reported: set[Path] = set()  # outputs whose result came back
    stopped: str | None = None  # why the run ended early
    exit_code = EXIT_FAILED
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (embedded use): keep the default
        pass
    try:
        if not decode_mode and tasks:
            # missing weights, an option of another codec: one error up front, not
            # one per file (and in this process the encoder is then loaded once)
            coders.setup(options).encoder()
        try:
            # a Ray cluster starts (or is joined) before the bar, whose clock it
            # would stop; with nothing to do, none is started
            with runner if tasks else contextlib.nullcontext():
                with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(),
                              TimeRemainingColumn(), console=stderr_console()) as progress:
                    bar = progress.add_task("decoding" if decode_mode else "encoding",
                                            total=len(tasks))
                    for result in runner.run(tasks) if tasks else ():
                        reported.add(result.out)
                        for note in result.notes:
                            warn(note)
                        if result.ok:
                            done += 1
                        else:
                            failures.append((str(result.src), result.message))
                            failed += 1
                            progress.console.print(
                                f"[red]failed[/] {escape(str(result.src))}: "
                                f"{escape(result.message)}", highlight=False, soft_wrap=True)
                            if result.stop:
                                stopped = f"stopped after: {result.stop}"
                                break
                        progress.advance(bar)
        finally:
            # a file whose result never came back (in a worker when the run stopped,
            # or reported just as Ctrl-C arrived) counts by what is on disk
            done += sum(_identity(t.out) not in (None, before[t.out])
                        for t in tasks if t.out not in reported)
            if runner.temp_file_wait is not None and tasks:
                # a worker that died or was stopped mid-write leaves its temp file
                remove_partial_outputs([t.out for t in tasks], runner.temp_file_wait)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        stopped = "terminated" if terminated else "interrupted"
        exit_code = 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    summary = f"{done} done, {skipped} skipped (already done), {len(failures)} failed"
    if stopped:
        summary += f", {len(tasks) - done - failed} not done ({stopped}; rerun to finish them)"
    click.echo(summary)
    for path, message in failures:
        click.echo(f"  failed: {path}: {message}")
    if failures or stopped:
        raise SystemExit(exit_code)

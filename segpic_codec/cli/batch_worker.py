"""One file of `segpic batch`, as every executor runs it: a picklable task in, a small
result record out. The same function runs in this process (the default), in a
local worker process (`--jobs N`) or in a Ray task (`--executor ray`)."""

from __future__ import annotations

import contextlib
import io
import signal
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rich.console import Console

from ..cores import set_thread_budget
from ..errors import CodecError
from . import base, files


@dataclass(frozen=True)
class BatchOptions:
    """Everything a worker needs besides the two paths; frozen and hashable so that
    a worker process loads the encoder once per distinct set of options."""

    decode: bool
    codec: str
    device: str
    quality: float | None = None
    bpp: float | None = None
    # the codec options given (the codecs' declared flags), sorted (name, value) pairs
    codec_options: tuple[tuple[str, Any], ...] = ()
    strip: bool = False  # leave the metadata out
    size: int | None = None  # targets: --size (bytes), --psnr (dB)
    psnr: float | None = None
    best_effort: bool = False
    output: files.ImageOutput = files.ImageOutput()  # --decode: the image format written

    @property
    def weights(self) -> Path | None:
        """--weights: also where `--decode` finds the decoder's weights."""
        return dict(self.codec_options).get("weights")

    def encoder_setup(self) -> base.EncoderSetup:
        return base.EncoderSetup(self.codec, self.device, dict(self.codec_options))


def codec_option_items(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The options given (not None) as `BatchOptions.codec_options`."""
    return tuple(sorted((k, v) for k, v in options.items() if v is not None))


@dataclass(frozen=True)
class FileTask:
    src: Path
    out: Path
    options: BatchOptions


@dataclass
class FileResult:
    """ok, or `message` (one line, without the path). `stop`: why every further
    write would fail the same way (a full disk), so the run stops. `notes`: warnings printed
    while the file was coded (gray input converted...), shown by the driver."""

    src: Path
    out: Path
    ok: bool
    message: str = ""
    stop: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Coders:
    """The encoder and decoders of one process, loaded once per set of options."""

    def __init__(self) -> None:
        self.setups: dict[BatchOptions, base.EncoderSetup] = {}
        self.decoders: dict[BatchOptions, base.DecoderCache] = {}

    def setup(self, options: BatchOptions) -> base.EncoderSetup:
        if options not in self.setups:
            self.setups[options] = options.encoder_setup()
        return self.setups[options]

    def decoder(self, options: BatchOptions) -> base.DecoderCache:
        if options not in self.decoders:
            self.decoders[options] = base.DecoderCache(options.weights, options.device)
        return self.decoders[options]


_CODERS = Coders()


def check_regular(path: Path) -> None:
    """Refuse pipes, devices and sockets in a batch folder: opening a FIFO nobody
    writes to would block the whole run. (Missing files and link loops are left to
    the reader, which names them.)"""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise CodecError(f"{path}: not a regular file (a pipe, device or socket)")


def process_file(task: FileTask, coders: Coders = _CODERS) -> FileResult:
    """Code one file; the errors a bad file or a full disk cause become the result
    (anything else propagates: the caller decides whether it ends the run)."""
    start = time.monotonic()
    src, out, options = task.src, task.out, task.options
    try:
        check_regular(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if options.decode:
            files.decode_file(coders.decoder(options), src, out, strip=options.strip,
                             output=options.output)
        else:
            files.encode_file(coders.setup(options), src, out, options.quality, options.bpp,
                             strip=options.strip, size=options.size, psnr=options.psnr,
                             best_effort=options.best_effort)
    except (*base.EXPECTED_ERRORS, OSError, ValueError, MemoryError) as exc:
        message = base.os_message(exc) if isinstance(exc, OSError) else str(exc)
        stop = None
        if isinstance(exc, OSError) and exc.errno in base.DISK_ERRNOS:
            stop = exc.strerror or message
        return FileResult(src, out, False, message.removeprefix(f"{src}: "), stop,
                          seconds=time.monotonic() - start)
    return FileResult(src, out, True, seconds=time.monotonic() - start)


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    """Collect what `base.warn` prints while one file is coded: a worker has no
    progress bar to print beside, so its warnings travel back in the result."""
    buffer = io.StringIO()
    notes: list[str] = []
    previous = base.swap_stderr_console(
        Console(file=buffer, width=10_000, no_color=True, highlight=False))
    try:
        yield notes
    finally:
        base.swap_stderr_console(previous)
        notes.extend(line.removeprefix("segpic: warning: ")
                     for line in buffer.getvalue().splitlines() if line.strip())


def run_in_worker(task: FileTask) -> FileResult:
    """`process_file` in a worker: an unexpected error fails this file only (it
    cannot end the run from here, and a traceback would mean nothing to the user)."""
    with _captured_warnings() as notes:
        try:
            result = process_file(task)
        except Exception as exc:  # noqa: BLE001 - reported as this file's failure
            result = FileResult(task.src, task.out, False,
                                f"internal error ({type(exc).__name__}: {exc})")
    result.notes = notes
    return result


def set_threads(threads: int) -> None:
    """Threads of this worker (torch's, where installed, and the numpy
    decoders'): N workers x `threads` should not exceed the cores, or they
    slow each other down."""
    set_thread_budget(threads)
    try:
        import torch
    except ImportError:  # a decode-only install
        return
    torch.set_num_threads(max(1, threads))


def ray_task(task: FileTask, threads: int) -> FileResult:
    """The body of a Ray task (wrapped with ray.remote by the driver)."""
    set_threads(threads)
    return run_in_worker(task)


class _Stop(BaseException):
    """SIGTERM from the driver: unwinds the file in progress, whose atomic write
    removes its temporary file on the way out."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def worker_main(conn: Connection, threads: int) -> None:
    """A local worker process (`--jobs N`): tasks in over `conn`, results out, until
    None, the end of the pipe or SIGTERM."""
    # Ctrl-C in a terminal reaches the whole process group: the driver alone
    # decides, and stops the workers with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        set_threads(threads)
        while True:
            task = conn.recv()
            if task is None:
                return
            conn.send(run_in_worker(task))
    except (_Stop, EOFError, OSError):
        return

"""Where `segpic batch` codes its files: in this process, one after the other (the
default), or in N local worker processes (`--jobs N`); Ray is in `ray_executor`,
which builds on this module (the command picks the runner: batch.make_runner).

A runner is a context manager whose `run(tasks)` yields one `FileResult` per task as
the files finish. Leaving the context, whether the run is done, stopped by the
caller (a full disk) or by Ctrl-C, cancels what was not started and stops the
workers; batch counts a file whose result never came back by its output on disk."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Protocol

from ..image_io import pid_alive, temp_file_parts
from .batch_worker import Coders, FileResult, FileTask, process_file, worker_main

# A worker that dies mid-file (segfault, OOM killer) is replaced and its file tried
# again this many times; a file that kills every worker is then reported as failed.
MAX_RETRIES = 2
STOP_TIMEOUT = 10.0  # seconds a stopped worker has to unwind before it is killed


class Runner(Protocol):
    """What batch needs from an executor (see the module docstring)."""

    #: seconds to wait, once stopped, for killed workers to exit before their
    #: temporary files count as stale; None: the runner never leaves any
    temp_file_wait: float | None

    def __enter__(self) -> Runner: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def run(self, tasks: list[FileTask]) -> Iterator[FileResult]: ...


class InlineRunner:
    """Today's batch: every file in this process, in order. Errors other than a bad
    file propagate (the command reports them and stops), as before."""

    temp_file_wait = None  # atomic_write_bytes removes its own file, even on Ctrl-C

    def __init__(self, coders: Coders) -> None:
        self.coders = coders  # loaded in this process, shared with the command

    def __enter__(self) -> InlineRunner:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def run(self, tasks: list[FileTask]) -> Iterator[FileResult]:
        for task in tasks:
            yield process_file(task, self.coders)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    task: FileTask | None = None


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """A process started while SIGINT is ignored inherits that, so a Ctrl-C during
    its start-up cannot print a traceback from it (it then ignores SIGINT itself)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class ProcessRunner:
    """`--jobs N`: N spawned worker processes, each coding one file at a time. Not a
    ProcessPoolExecutor: when a worker dies that pool breaks as a whole and cannot
    say which file killed it; here each worker has its own pipe, so the file is
    known, tried again on a fresh worker, and reported if it kills every one."""

    temp_file_wait = 0.0  # the workers have been joined when the context is left

    def __init__(self, jobs: int, threads: int, max_retries: int = MAX_RETRIES) -> None:
        self.jobs = jobs
        self.threads = threads
        self.max_retries = max_retries
        self._context = multiprocessing.get_context("spawn")  # no forked torch state
        self._workers: list[_Worker] = []

    def __enter__(self) -> ProcessRunner:
        return self

    def _start_worker(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=worker_main, args=(child, self.threads),
                                        name="segpic-batch-worker", daemon=True)
        with _sigint_ignored():
            process.start()
        child.close()
        return _Worker(process, parent)

    def run(self, tasks: list[FileTask]) -> Iterator[FileResult]:
        pending = deque(tasks)
        deaths: dict[Path, int] = {}
        self._workers = [self._start_worker() for _ in range(min(self.jobs, len(pending)))]
        while pending or self.in_flight():
            for worker in self._workers:
                if worker.task is None and pending:
                    worker.task = pending.popleft()
                    try:
                        worker.conn.send(worker.task)
                    except OSError:  # died while idle: its sentinel is set, see below
                        pass
            busy = [w for w in self._workers if w.task is not None]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            dead = []
            for worker in busy:
                result = self._receive(worker)
                if result is not None:
                    worker.task = None
                    yield result
                elif not worker.process.is_alive():
                    dead.append(worker)
            for worker in dead:
                task, worker.task = worker.task, None
                assert task is not None
                worker.conn.close()
                worker.process.join(STOP_TIMEOUT)
                self._workers.remove(worker)
                deaths[task.out] = deaths.get(task.out, 0) + 1
                if deaths[task.out] > self.max_retries:
                    yield FileResult(task.src, task.out, False,
                                     f"the worker died ({_exit_status(worker.process.exitcode)})"
                                     f" on each of {deaths[task.out]} attempts")
                else:
                    pending.appendleft(task)
                if len(self._workers) < min(self.jobs, len(pending) + len(self.in_flight())):
                    self._workers.append(self._start_worker())

    @staticmethod
    def _receive(worker: _Worker) -> FileResult | None:
        try:
            if worker.conn.poll():
                return worker.conn.recv()
        except (EOFError, OSError):  # the worker died; its sentinel says so
            worker.process.join(STOP_TIMEOUT)
        return None

    def in_flight(self) -> list[FileTask]:
        return [w.task for w in self._workers if w.task is not None]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for worker in self._workers:
            if worker.task is None:
                try:
                    worker.conn.send(None)  # idle: ends its loop
                    continue
                except OSError:
                    pass
            # busy (the run was stopped): SIGTERM unwinds the file in progress,
            # whose atomic write removes its temporary file
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def remove_partial_outputs(outputs: Collection[Path], wait_s: float) -> int:
    """Delete the temporary files (image_io.atomic_write_bytes') of `outputs` that a
    worker left when it died or was killed mid-write; those of a process still alive
    are waited for up to `wait_s` seconds (a killed worker may take a moment to
    exit), then left (another run may be writing them). Returns how many were
    deleted."""
    names: dict[Path, set[str]] = {}
    for out in outputs:
        names.setdefault(out.parent, set()).add(out.name)
    deadline = time.monotonic() + wait_s
    removed = 0
    while True:
        alive = 0
        for folder, wanted in names.items():
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                parts = temp_file_parts(entry.name)
                if parts is None or parts[0] not in wanted:
                    continue
                # this process has no write in progress once the run stopped
                if parts[1] != os.getpid() and pid_alive(parts[1]):
                    alive += 1
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        if not alive or time.monotonic() >= deadline:
            return removed
        time.sleep(0.1)

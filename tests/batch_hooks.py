"""Workers of `segpic batch` that die mid-file, for test_batch_executors: as a
segfault or the OOM killer would, a worker leaves a partial temporary file and
exits without cleaning up. A test-only module (the shipped worker has no hook):
the tests put these functions where the executors look for the worker's entry
point, by monkeypatching.

`dying` lists input file names; "NAME:once" dies on the first attempt only (a
hidden marker file beside the input remembers the attempt across workers)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection

from segpic_codec.cli import batch_worker
from segpic_codec.cli.batch_worker import FileResult, FileTask

EXIT_CODE = 70


def die_if_listed(task: FileTask, dying: tuple[str, ...]) -> None:
    for entry in dying:
        name, _, mode = entry.partition(":")
        if name != task.src.name:
            continue
        marker = task.src.with_name(f".{task.src.name}.exited")  # hidden: not an input
        if mode == "once":
            if marker.exists():
                return
            marker.touch()
        task.out.parent.mkdir(parents=True, exist_ok=True)
        # the naming of image_io.atomic_write_bytes' temporary files
        fd, _tmp = tempfile.mkstemp(prefix=f".{task.out.name}.{os.getpid()}.", suffix=".part",
                                    dir=task.out.parent)
        os.write(fd, b"partial")
        os._exit(EXIT_CODE)


def dying_worker_main(conn: Connection, threads: int, dying: tuple[str, ...]) -> None:
    """executors.worker_main for `--jobs N` (as functools.partial(..., dying=...)):
    runs in the spawned worker, which imports this module from the tests folder
    (the parent's sys.path travels with a spawned process)."""
    process_file = batch_worker.process_file

    def dying_process_file(task: FileTask, *args: object) -> FileResult:
        die_if_listed(task, dying)
        return process_file(task, *args)

    batch_worker.process_file = dying_process_file  # what run_in_worker calls
    batch_worker.worker_main(conn, threads)


def dying_ray_task(dying: tuple[str, ...]) -> Callable[[FileTask, int], FileResult]:
    """ray_executor.ray_task for `--executor ray`. Ray pickles it to its workers,
    by value once the test has registered this module (ray.cloudpickle
    .register_pickle_by_value): Ray workers cannot import the tests folder."""

    def ray_task(task: FileTask, threads: int) -> FileResult:
        die_if_listed(task, dying)
        return batch_worker.ray_task(task, threads)

    return ray_task

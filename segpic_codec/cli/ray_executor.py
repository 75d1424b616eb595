"""`segpic batch --executor ray`: one Ray task per file, on the cluster at
`--address`, or on a local cluster started for the run and shut down after it.

Ray retries a task whose worker died (max_retries); an error in the file itself
comes back as a failed result and is not retried. On a real cluster every node
needs segpic installed and SRC, DST (and --weights) at the same paths, e.g. on a
shared file system: the workers read and write the files themselves."""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from ..cores import usable_cores
from ..errors import CodecError
from .batch_worker import FileResult, FileTask, ray_task
from .executors import MAX_RETRIES, STOP_TIMEOUT

INSTALL_HINT = 'pip install -e ".[cluster]" in a checkout, or pip install "segpic[cluster]"'
CONNECT_TIMEOUT = 5.0  # seconds for the cluster's address to answer
KILLED_WAIT = 10.0  # seconds for force-killed local workers to exit (their temp files)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CodecError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}"
                         ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuse an address nobody listens on within seconds: Ray itself retries for
    minutes, printing warnings. ("auto" and the like are left to Ray.)"""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise CodecError(f"cannot reach the Ray cluster at {address}: "
                         f"{exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RayRunner:
    """See the module docstring; the runner protocol is in `executors`."""

    def __init__(self, address: str | None, num_cpus: int | None,
                 max_retries: int = MAX_RETRIES) -> None:
        self._ray = import_ray()
        self.address = address
        self.num_cpus = num_cpus or usable_cores()
        self.max_retries = max_retries
        self.temp_file_wait: float | None = KILLED_WAIT
        self._owns = False  # this run called ray.init: it shuts Ray down after
        self._threads = 1
        self._refs: dict[Any, FileTask] = {}

    def __enter__(self) -> RayRunner:
        ray = self._ray
        if ray.is_initialized():  # embedded use (and the tests): a cluster joined before
            return self
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": logging.ERROR}
        if self.address:
            _check_reachable(self.address)
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                # "local": a new cluster even where RAY_ADDRESS names one
                ray.init(address="local", num_cpus=self.num_cpus, **options)
                # one CPU per task; a local cluster smaller than this machine gives
                # each task the cores left over
                self._threads = max(1, usable_cores() // self.num_cpus)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = f"at {self.address}" if self.address else "locally"
            raise CodecError(f"cannot start Ray {where}: {_first_line(exc)}") from None
        self._owns = True
        return self

    def run(self, tasks: list[FileTask]) -> Iterator[FileResult]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries,
                            retry_exceptions=False)(ray_task)
        pending = deque(tasks)
        # a bounded window of submitted tasks, not the whole folder: a stop has
        # little to cancel and a huge folder does not fill the object store
        window = max(4, 2 * int(ray.cluster_resources().get("CPU", 1)))
        while pending or self._refs:
            while pending and len(self._refs) < window:
                task = pending.popleft()
                self._refs[remote.remote(task, self._threads)] = task
            # a timeout, so that Ctrl-C is handled within a second
            ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=1.0)
            for ref in ready:
                task = self._refs.pop(ref)
                yield self._result(ref, task)

    def _result(self, ref: Any, task: FileTask) -> FileResult:
        exceptions = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError,
                exceptions.OutOfMemoryError) as exc:
            message = (f"the worker died on each of {self.max_retries + 1} attempts "
                       f"({type(exc).__name__})")
        except exceptions.RayTaskError as exc:
            message = f"internal error ({_first_line(exc)})"
        except exceptions.RayError as exc:
            message = _first_line(exc)
        return FileResult(task.src, task.out, False, message)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        ray = self._ray
        try:
            refs = list(self._refs)
            if refs:
                # KeyboardInterrupt in the running tasks: their atomic writes remove
                # their temporary files; whatever does not stop in time is killed.
                # Finished tasks are left alone: cancelling one whose reply is on its
                # way can trip a failed check in Ray's core (2.60) that kills this
                # process (about 1 stop in 8 in the interrupt test)
                _, running = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in running:
                    ray.cancel(ref)
                _, left = ray.wait(refs, num_returns=len(refs), timeout=STOP_TIMEOUT)
                for ref in left:
                    ray.cancel(ref, force=True)
        finally:
            if self._owns:
                ray.shutdown()  # stops a local cluster; only disconnects from --address

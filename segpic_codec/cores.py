"""How many CPU threads this process gives to one image's work.

The cores it may run on, unless a batch worker was given fewer (N workers x
their threads should not exceed the cores: oversubscribed, they slow each
other down). Torch-free: the numpy decoders read it too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

_budget: int | None = None


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_thread_budget(threads: int) -> None:
    """The threads one image's work may use in this process from now on."""
    global _budget
    _budget = max(1, int(threads))


def thread_budget() -> int:
    return _budget if _budget is not None else usable_cores()


def run_threaded(work: Callable[[Any], None], items: Iterable[Any], max_threads: int) -> None:
    """work(item) for every item, on up to min(max_threads, thread_budget())
    threads; for work that spends its time in numpy calls that release the GIL
    (large products and element-wise passes). Re-raises the first error once
    every thread has stopped. (Plain threads: concurrent.futures would cost a
    decoder's start-up more than a Kodak image's whole upsampling.)"""
    pending = list(items)
    threads = min(max_threads, thread_budget(), len(pending))
    if threads <= 1:
        for item in pending:
            work(item)
        return
    pending.reverse()  # pop() takes them in order
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            try:
                item = pending.pop()
            except IndexError:  # list.pop is atomic: no lock needed
                return
            try:
                work(item)
            except BaseException as exc:  # re-raised by the caller
                errors.append(exc)

    others = [threading.Thread(target=worker, daemon=True) for _ in range(threads - 1)]
    for thread in others:
        thread.start()
    worker()
    for thread in others:
        thread.join()
    if errors:
        raise errors[0]

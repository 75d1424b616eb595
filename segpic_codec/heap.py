"""Handing freed memory back to the operating system between the large stages.

glibc's malloc keeps freed blocks for reuse, and it raises its mmap threshold
each time a large block is freed, so after the first few stages even the
tens-of-megabyte activations of a band come from the heap and stay resident
when freed. A process's peak (resident) memory is then the sum of every
stage's leftovers rather than the largest stage. `release_free_memory()` calls
`malloc_trim(0)`, which returns the free pages (top of the heap and whole
pages inside it) at a cost of a few milliseconds; the codecs call
`between_stages()` where one large stage ends and the next begins.

That is free in a process that codes one image (every page is faulted in once
anyway) and lowers a Kodak decode's peak from about 635 to 565 MB
(`segpic bench speed process`). In a process that codes image after image
(the benchmark, the Python API in a loop) the next stage faults the returned
pages in again, about 10 % of a Kodak decode; so it is off unless turned on,
and the CLI turns it on (`enable_between_stages`). Lowering glibc's mmap
threshold for good would do the same continuously, but the page faults of every
large allocation cost a quarter of a Kodak decode on the 2-core machine.

Elsewhere than glibc (macOS, Windows, musl) this is a no-op.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache

_between_stages = False


def enable_between_stages(enabled: bool = True) -> None:
    """Make `between_stages()` release memory (the CLI does, for its whole process)."""
    global _between_stages
    _between_stages = enabled


def between_stages() -> None:
    """Where a codec's large stage ends: release freed memory if enabled."""
    if _between_stages:
        release_free_memory()


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: a process that never trims does not pay for it

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return freed heap memory to the OS; True if the C library can (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

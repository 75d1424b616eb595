"""One BLAS thread while the synthesis runs.

The synthesis' matrix products are thin (a few dozen rows): OpenBLAS gains
little by splitting them, and on a busy machine each split waits for its
slowest thread (measured: five times slower with two threads on a loaded
2-core machine). numpy has no setting for it, so this finds the OpenBLAS that
numpy loaded and calls its own thread setter, restoring the caller's count
afterwards. Where no such library is found nothing changes: the results are
the same either way (the integer synthesis is exact; the float one's sums
do not depend on threads in OpenBLAS's gemm), only the speed differs.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LOCK = threading.Lock()
_STATE = {"inside": 0, "previous": 1}


@functools.cache
def _openblas() -> tuple[object, object] | None:
    """(set_num_threads, get_num_threads) of the OpenBLAS numpy uses, or None."""
    import numpy as np

    names = [p for p in _loaded_libraries() if "openblas" in p.name.lower()]
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    names += sorted(libs.glob("*openblas*")) if libs.is_dir() else []
    for path in names:
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"),
                               ("scipy_openblas", ""), ("openblas", "")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def _loaded_libraries() -> list[Path]:
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    return sorted({Path(line.split()[-1]) for line in lines if ".so" in line})


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within: one OpenBLAS thread; the first of overlapping callers (threads)
    saves the count, the last restores it."""
    found = _openblas()
    if found is None:
        yield
        return
    setter, getter = found
    with _LOCK:
        if not _STATE["inside"]:
            _STATE["previous"] = getter()
            setter(1)
        _STATE["inside"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["inside"] -= 1
            if not _STATE["inside"]:
                setter(_STATE["previous"])

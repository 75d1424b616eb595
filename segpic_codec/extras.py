"""What a decode-only install lacks, said in one line.

`pip install segpic` installs what decoding MoRIC files needs (numpy, Pillow,
constriction; `segpic decode`, `segpic info`, the Pillow plugin). Encoding, and
SegPIC files, run PyTorch networks: `pip install "segpic[encode]"` adds PyTorch
and scikit-image (pyproject.toml's `encode` extra). A feature that meets one
of those missing raises `MissingInstallError` naming that install, not an
ImportError with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import SegpicError

ENCODE_INSTALL = 'pip install "segpic[encode]"'
# top-level modules of the `encode` extra -> the package a user would recognise
ENCODE_MODULES = {"torch": "PyTorch", "skimage": "scikit-image", "scipy": "SciPy"}


class MissingInstallError(SegpicError, ImportError):
    """A feature whose packages this install does not have."""


@contextmanager
def needs_encode_install(what: str) -> Iterator[None]:
    """Within: a missing module of the `encode` extra raises MissingInstallError
    ("<what> needs PyTorch, which is not installed: pip install ...")."""
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in ENCODE_MODULES:
            raise
        raise MissingInstallError(f"{what} needs {ENCODE_MODULES[root]}, which is not "
                                  f"installed: {ENCODE_INSTALL}") from None

"""Where the shared data lives: the Kodak images, the published anchors, the
training data and the authors' reference test vector. Torch-free.

One setting names it, the environment variable SEGPIC_SHARED. Unset, it is
`../shared` beside a source checkout (the folder that holds pyproject.toml and
segpic_codec/); an installed package has no checkout, so there a command that
needs the data stops with a one-line error that names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SegpicError

ENV_VAR = "SEGPIC_SHARED"


class SharedDataError(SegpicError):
    """The shared data folder is not set or not there (one line for the user)."""


def checkout_root() -> Path | None:
    """The source checkout that holds this package, or None for an installed one."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def configured_dir() -> Path | None:
    """Where the shared data should be: $SEGPIC_SHARED, else ../shared beside the
    checkout, else (an installed package) None. Not checked to exist."""
    value = os.environ.get(ENV_VAR)
    if value:
        return Path(value).expanduser()
    root = checkout_root()
    return None if root is None else root.parent / "shared"


def shared_dir(required: bool = True) -> Path | None:
    """The shared data folder (see configured_dir). With `required`, a missing
    setting or folder is a SharedDataError; without, None."""
    folder = configured_dir()
    if folder is None:
        if required:
            raise SharedDataError(f"{ENV_VAR} is not set: set it to the shared data "
                                  "folder (the one holding data/kodak and anchors/)")
        return None
    value = os.environ.get(ENV_VAR)
    if not folder.is_dir():
        if required:
            how = f"{ENV_VAR}={value}" if value else f"{ENV_VAR} is unset, so ../shared"
            raise SharedDataError(f"shared data folder {folder} not found ({how}); set "
                                  f"{ENV_VAR} to the folder holding data/kodak and anchors/")
        return None
    return folder


def shared_path(*parts: str, required: bool = True) -> Path | None:
    """A path inside the shared data folder, e.g. shared_path("data", "kodak");
    not checked to exist (callers say what they looked for)."""
    base = shared_dir(required=required)
    return None if base is None else base.joinpath(*parts)


def kodak_dir(required: bool = True) -> Path | None:
    """The 24 Kodak images."""
    return shared_path("data", "kodak", required=required)


def anchors_dir(required: bool = True) -> Path | None:
    """The published Kodak curves (CompressAI JSON, per_image/*.tsv)."""
    return shared_path("anchors", "kodak", required=required)


def kodak_image(name: str = "kodim23", required: bool = True) -> Path | None:
    """One Kodak image by stem (kodim23 is the one the speed measurements use)."""
    folder = kodak_dir(required=required)
    return None if folder is None else folder / f"{name}.png"

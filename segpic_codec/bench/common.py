"""What every part of the bench shares: its one-line error, where the repository
is, how paths and numbers are written into the results."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import click

import segpic_codec

REPO = Path(segpic_codec.__file__).resolve().parent.parent


class BenchError(click.ClickException):
    """One line for the user, exit status 1, no traceback."""


def display_path(p: Path) -> str:
    """Repository-relative where possible: committed results must not carry the
    paths of the machine that made them."""
    full = p.resolve()
    for base, prefix in ((REPO, ""), (REPO.parent, "../")):
        if full.is_relative_to(base):
            return prefix + str(full.relative_to(base)) if full != base else (prefix or "./")
    return str(full)


def version(dist: str) -> str:
    """An installed distribution's version, "?" when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def fmt_setting(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else f"{s:g}"


def json_num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def note(cfg_notes: list[str], msg: str, kind: str = "note") -> None:
    """Record a note in the results and say it on stderr, one line."""
    cfg_notes.append(msg)
    click.echo(f"segpic bench: {kind}: {msg}", err=True)

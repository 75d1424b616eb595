"""What every part of the bench shares: its one-line error, where the repository
and the shared data are, a codec's measurement hooks, how paths and numbers are
written into the results."""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from pathlib import Path
from types import ModuleType

import click

import segpic_codec

from .. import shared_data

REPO = Path(segpic_codec.__file__).resolve().parent.parent


class BenchError(click.ClickException):
    """One line for the user, exit status 1, no traceback."""


def shared(*parts: str) -> Path:
    """A path in the shared data folder ($SEGPIC_SHARED, default ../shared beside
    the checkout); not set or not there is a BenchError."""
    try:
        return shared_data.shared_path(*parts)
    except shared_data.SharedDataError as exc:
        raise BenchError(str(exc)) from None


def codec_measure(codec: str) -> ModuleType:
    """The measurement hooks a codec declares in its own package (`<package>.measure`),
    found through the codec registry: the bench never imports a codec's modules."""
    from .. import codecs as registry

    try:
        package = registry.get(codec).package
    except ValueError as exc:  # CodecError: unknown codec
        raise BenchError(str(exc)) from None
    try:
        return importlib.import_module(f"{package}.measure")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.measure":
            raise
        raise BenchError(f"{codec} has no measurement hooks ({package}.measure)") from None


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

"""`-` for standard input and output, as cwebp, cjxl and ImageMagick take it.

What is read from a pipe is bounded like a file of the same kind (a .spic file by
`max_spic_bytes`, an image by `max_image_bytes`): an endless or huge input is
refused before it fills the memory. Binary output is written in one piece, once
the whole result exists, and never to a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import CodecError

STDIO = Path("-")
STDIN_NAME = "<stdin>"


def is_stdio(path: Path) -> bool:
    return str(path) == "-"


def display(path: Path, stdin: bool = True) -> str:
    """How a path appears in messages."""
    return (STDIN_NAME if stdin else "<stdout>") if is_stdio(path) else str(path)


def read_stdin(limit: int, what: str) -> bytes:
    """All of standard input, at most `limit` bytes (reads limit + 1 to tell)."""
    stream = sys.stdin.buffer
    if stream.isatty():
        raise CodecError(f"{STDIN_NAME}: is a terminal; pipe {what} in (cat FILE | segpic ...)")
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise CodecError(f"{STDIN_NAME}: more than {limit} bytes, too large to be {what}")
    if not data:
        raise CodecError(f"{STDIN_NAME}: empty input, no {what}")
    return data


def check_stdout() -> None:
    """Refuse binary output to a terminal before any work is done."""
    if sys.stdout.isatty():
        raise CodecError("<stdout>: is a terminal; redirect the output (> FILE or | ...)")


def write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()

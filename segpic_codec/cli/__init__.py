"""The `segpic` command line: `base` (the group, errors, shared options),
`coding` (encode, decode, info), `batch`, `tools` (train, bench)."""

from . import batch, coding, tools, weights_cmd  # noqa: F401  (importing them registers the commands)
from .base import main

__all__ = ["main"]

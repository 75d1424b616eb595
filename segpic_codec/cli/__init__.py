"""The `segpic` command line: `base` (the group, errors, shared options),
`files` (reading and writing one file; `stdio` for `-`), `coding` (encode,
decode, info), `batch`, `tools` (train, bench), `weights_cmd`
(import-weights). The group imports a command's module when the command is used
(base.LazyGroup), so a quick command pays only for what it needs."""

from .base import main

__all__ = ["main"]

"""The click group `segpic bench` (also `python -m segpic_codec.bench`) and its
subcommands: `rd` (curves of a folder), `points` (one JSON line per encode),
`speed` (step, decode, process and batch times, peak memory) and `table`
(BD-rate tables and plots from runs and points files).

`segpic bench [SRC] [OPTIONS]`, the form from before the subcommands, still
runs `segpic bench rd [SRC] [OPTIONS]`: a first argument that names no
subcommand goes to `rd`.
"""

from __future__ import annotations

import click

from .points import points
from .rd import rd
from .screen import screen_table
from .speed import speed
from .table import table
from .time_table import minutes_table

DEFAULT_COMMAND = "rd"


class BenchGroup(click.Group):
    """A group whose arguments go to `rd` when they name no subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_asked = args[:1] and args[0] in ctx.help_option_names
        if not help_asked and (not args or args[0] not in self.commands):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
def bench() -> None:
    """Measurements: rate-distortion curves, points, speed and memory, BD-rate tables.

    Without a subcommand (or with options or a folder first) it runs `rd`.
    """


table.add_command(minutes_table)
table.add_command(screen_table)
for command in (rd, points, speed, table):
    bench.add_command(command)

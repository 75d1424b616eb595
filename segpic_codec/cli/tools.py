"""`segpic train` (SegPIC's training loop) and `segpic bench` (the benchmark)."""

from __future__ import annotations

from pathlib import Path

import click

from ..segpic.config import CONFIGS, DEFAULT_CONFIG
from .base import handle_errors, main, stderr_console


@main.command()
@click.option("--data", "data", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, help="Folder of training images (+ masks/<stem>.png) or a pack.")
@click.option("--run-dir", type=click.Path(path_type=Path), required=True,
              help="Where checkpoints, log.jsonl and exported weights go.")
@click.option("--model", type=click.Choice(sorted(CONFIGS)), default=DEFAULT_CONFIG,
              show_default=True)
@click.option("--steps", type=int, default=1_000_000, show_default=True)
@click.option("--time-budget", type=float, default=0.0,
              help="Stop after this many seconds of training (cumulative over resumes).")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--warmup-steps", type=int, default=500, show_default=True)
@click.option("--masks", type=click.Choice(["auto", "grid"]), default="auto", show_default=True,
              help="auto: ground-truth or unsupervised masks; grid: grid partitions (ablation).")
@click.option("--grid", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast on CUDA.")
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True)
@click.option("--init", type=click.Path(path_type=Path, exists=True), default=None,
              help="Start from these weights (a weights folder or manifest).")
@click.option("--resume/--no-resume", default=True, show_default=True)
@click.option("--log-every", type=int, default=50, show_default=True)
@click.option("--checkpoint-every", type=float, default=300.0, show_default=True)
@click.option("--eval-dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Evaluate on these images with real bitstreams.")
@click.option("--eval-every", type=int, default=0, show_default=True)
@click.option("--eval-images", type=int, default=24, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@handle_errors
def train(**kwargs) -> None:
    """Train a variable-rate SegPIC model."""
    from ..segpic.training.train import TrainOptions
    from ..segpic.training.train import train as run

    kwargs["compile"] = kwargs.pop("compile_")
    run(TrainOptions(**kwargs), console=stderr_console())


def _register_bench() -> None:
    """`segpic bench` lives in bench.py; its errors get the same one-line form."""
    from ..bench import bench as bench_command

    def wrap(command: click.Command) -> None:
        if command.callback is not None:
            command.callback = handle_errors(command.callback)
        for sub in getattr(command, "commands", {}).values():
            wrap(sub)

    wrap(bench_command)
    main.add_command(bench_command, name="bench")


_register_bench()

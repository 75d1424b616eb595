"""`segpic import-weights`: the authors' SegPIC checkpoints -> a segpic weights folder."""

from __future__ import annotations

from pathlib import Path

import click

from .base import handle_errors, main, stderr_console, warn


def _lambdas(value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("give numbers separated by commas") from None


@main.command("import-weights")
@click.argument("checkpoints", nargs=-1, required=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Weights folder to write (manifest.json + shards).")
@click.option("--lambdas", default=None, metavar="L1,L2,...",
              help="The lambda of each checkpoint, in the same order. Default: the paper's "
                   "six (0.0018 ... 0.0483) for six checkpoints.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True, help="Storage precision (float32 keeps the authors' values).")
@handle_errors
def import_weights(checkpoints: tuple[Path, ...], out_dir: Path, lambdas: str | None,
                   dtype: str) -> None:
    """Import the authors' SegPIC checkpoints (GityuxiLiu/SegPIC-for-Image-Compression).

    Each checkpoint is one fixed-rate network; give them lowest lambda (lowest rate)
    first: checkpoint i becomes quality i. Qualities of the result are whole numbers."""
    import torch

    from ..segpic.weights.import_weights import import_checkpoints

    torch_dtype = torch.float32 if dtype == "float32" else torch.float16
    manifest_path, config = import_checkpoints(list(checkpoints), out_dir,
                                               _lambdas(lambdas), torch_dtype)
    from ..segpic.weights.folder import read_manifest

    _, manifest = read_manifest(manifest_path)
    if not manifest["training"].get("paper_widths"):
        warn("these checkpoints do not have the paper's widths (N=192, M=320, ...); "
             "the folder records theirs")
    levels = ", ".join(f"q{q['quality']}: lambda {q['lambda']:g} <- {q['source']['file']}"
                       for q in manifest["qualities"])
    stderr_console().print(f"wrote {manifest_path.parent}: model {config.name}, "
                  f"{manifest['parameters']:,} parameters per level, weights id "
                  f"{manifest['weights_id']}; {levels}", highlight=False, soft_wrap=True)

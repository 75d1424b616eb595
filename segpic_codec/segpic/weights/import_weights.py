"""Import the authors' SegPIC checkpoints (GityuxiLiu/SegPIC-for-Image-Compression)
as a segpic weights folder: `segpic import-weights CKPT [CKPT...] --out DIR`.

Each checkpoint is one fixed-rate network for one lambda; the checkpoints become
the quality levels 1..n of one folder, in the order given (lowest lambda first;
the files do not record their lambda, so the order is the caller's). The widths
are read off the checkpoint's shapes, so a reduced-width model of the same class
imports too. The weights are stored in float32 by default (the authors' own
precision); the weights id is computed as for any weights folder and is written
into every file made with them.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from ..config import CONFIGS, PAPER_LAMBDAS, ModelConfig
from ..networks.model import SegPIC
from .authors import CheckpointError, canonical, classify, convert
from .authors import our_to_theirs as _our_to_theirs
from .authors_config import config_from_state_dict
from .folder import file_sha256
from .levels import save_levels

AUTHORS_REPO = "GityuxiLiu/SegPIC-for-Image-Compression"


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an authors' checkpoint, keys canonical (see `authors.py`):
    `module.` stripped, old EntropyBottleneck names updated, duplicate
    registrations folded (they must hold the same values). Optimizer entries and
    anything else beside `state_dict` are ignored."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint of "
                              "tensors (torch.load with weights_only=True refused it)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise CheckpointError(f"{path} holds no state_dict of tensors")
    state: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        name = canonical(key)
        if name in state and not torch.equal(state[name], value):
            raise CheckpointError(f"{path}: key {key} differs from its other registration "
                                  f"{name}")
        state[name] = value
    return state


def check_keys(state: dict[str, torch.Tensor], template: dict[str, torch.Tensor],
               source: str) -> None:
    """Every key of the checkpoint is mapped, an alias, or dropped for a reason."""
    mapped = {_our_to_theirs(k) for k in template}
    unknown = sorted(k for k in state if classify(k, mapped)[0] == "unknown")
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise CheckpointError(f"{source}: unexpected key {unknown[0]}{more}; not a SegPIC "
                              "checkpoint of the supported version")


def template_for(config: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict's keys and shapes for `config`, without allocating it."""
    with torch.device("meta"):
        return SegPIC(config).state_dict()


def import_checkpoint(path: Path, config: ModelConfig | None = None
                      ) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """One checkpoint -> (our state dict, its config). With `config`, the
    checkpoint must fit it; else the widths are read off the checkpoint."""
    state = read_checkpoint(path)
    config = config or config_from_state_dict(state)
    template = template_for(config)
    check_keys(state, template, str(path))
    return convert(state, template, str(path)), config


def import_checkpoints(paths: Sequence[Path], out_dir: Path,
                       lambdas: Sequence[float] | None = None,
                       dtype: torch.dtype = torch.float32) -> tuple[Path, ModelConfig]:
    """Checkpoints (lowest lambda first) -> one weights folder with a quality level
    per checkpoint. `lambdas` defaults to the paper's six when six are given."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise CheckpointError("give at least one checkpoint")
    if lambdas is None:
        if len(paths) != len(PAPER_LAMBDAS):
            raise CheckpointError(f"{len(paths)} checkpoint(s): give their lambdas (the paper's "
                                  f"{len(PAPER_LAMBDAS)} are the default only for "
                                  f"{len(PAPER_LAMBDAS)} checkpoints)")
        lambdas = PAPER_LAMBDAS
    lambdas = tuple(float(lam) for lam in lambdas)
    if len(lambdas) != len(paths):
        raise CheckpointError(f"{len(paths)} checkpoint(s) but {len(lambdas)} lambda(s)")
    if any(b <= a for a, b in zip(lambdas, lambdas[1:], strict=False)) or lambdas[0] <= 0:
        raise CheckpointError("lambdas must be positive and increasing (checkpoints in "
                              "order of rate, lowest first)")
    first, found = import_checkpoint(paths[0])
    config = replace(found, lambdas=lambdas)
    pending = [first]  # handed over, then dropped: one network in memory at a time
    del first

    def levels() -> Iterator[tuple[dict[str, torch.Tensor], dict]]:
        for i, path in enumerate(paths):
            state = pending.pop() if i == 0 else import_checkpoint(path, found)[0]
            yield state, {"file": path.name, "sha256": file_sha256(path)}

    training = {
        "imported_from": AUTHORS_REPO,
        "note": "the authors' fixed-rate checkpoints, one per quality level",
        "paper_widths": _paper_widths(config),
    }
    manifest = save_levels(levels(), config, out_dir, training, dtype)
    return manifest, config


def _paper_widths(config: ModelConfig) -> bool:
    return replace(config, lambdas=PAPER_LAMBDAS) == CONFIGS["segpic"]

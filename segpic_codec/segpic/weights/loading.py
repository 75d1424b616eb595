"""Building the model of a weights folder: one `SegPIC` network (`folder.py`), or
the `LevelSet` of a fixed-rate folder (`levels.py`), which sits above both."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import ModelConfig
from ..networks.model import SegPIC
from .folder import WeightsError, model_from_state, read_manifest, read_state
from .levels import LevelSet


def load_weights(path: Path, device: torch.device | str = "cpu", verify: bool = True
                 ) -> tuple[SegPIC | LevelSet, dict]:
    """Build the model described by a manifest and load its weights (float32). A
    folder of fixed-rate levels (`levels.save_levels`) gives a `LevelSet`, which
    loads each level's network on first use."""
    manifest_path, manifest = read_manifest(path)
    try:
        config = ModelConfig.from_dict(manifest["config"])
        config.validate()
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"bad model config in {manifest_path}: {exc}") from None
    if manifest.get("levels"):
        return LevelSet(manifest_path, manifest, config, verify).to(device), manifest
    state = read_state(manifest_path.parent, manifest["files"], verify)
    try:
        model = model_from_state(config, state)
    except RuntimeError as exc:
        raise WeightsError(f"weights do not fit model {config.name!r}: {exc}") from None
    return model.to(device).eval(), manifest

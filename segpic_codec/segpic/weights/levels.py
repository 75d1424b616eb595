"""Fixed-rate weights: one network per quality level in one weights folder.

The authors' SegPIC has no gain units: each checkpoint is one network trained for
one lambda. `save_levels` writes several such networks (quality i = network i,
lowest lambda first) into one folder; `LevelSet` stands for the model of that
folder and loads a level's network the first time a file of that quality is
coded, so decoding one file reads one network (about 334 MB in float32 for the
full SegPIC) and not all six.

Manifest (version 2): as version 1 (`folder.py`), plus `levels`: the number of
networks, and in `qualities` each level's `files` (its shards, whose keys are
prefixed `quality<i>.`) and `source`. `files` lists every shard, so the weights id
covers all levels. Qualities are whole numbers: a fractional quality has no
network (the codec rejects it with a clear error rather than silently rounding).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from ..config import ModelConfig
from ..layout import CodedStreams
from ..networks.model import SegPIC
from .folder import (
    MANIFEST,
    WeightsError,
    model_from_state,
    read_state,
    weights_id_from_hashes,
    write_manifest,
    write_shards,
)


def level_prefix(level: int) -> str:
    return f"quality{level}."


def save_levels(levels: Iterable[tuple[dict[str, torch.Tensor], dict]], config: ModelConfig,
                out_dir: Path, training: dict | None = None,
                dtype: torch.dtype = torch.float32) -> Path:
    """Write one network per quality level, lowest lambda first, as one weights folder:
    `levels` yields (state dict of `SegPIC(config)`, where it came from), one at a
    time, so only one network needs to be in memory. Returns the manifest path."""
    if config.gain_units:
        raise WeightsError("only fixed-rate models (no gain units) have one network per level")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the manifest goes last: until then (and if an import fails) the folder has none
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for old in out_dir.glob("model-*.safetensors"):
        old.unlink()
    files: list[dict] = []
    qualities = []
    parameters = 0
    for i, (state, source) in enumerate(levels):
        if i >= config.num_qualities:
            raise WeightsError(f"more networks than the {config.num_qualities} lambdas")
        prefix = level_prefix(i + 1)
        shards = write_shards({prefix + k: v.detach().to("cpu", dtype).contiguous()
                               for k, v in state.items()}, out_dir, stem=f"model-q{i + 1}")
        files += shards
        qualities.append({"quality": i + 1, "lambda": config.lambdas[i],
                          "files": [f["name"] for f in shards], "source": dict(source)})
        parameters = sum(int(t.numel()) for t in state.values())
    if len(qualities) != config.num_qualities:
        raise WeightsError(f"{len(qualities)} networks for {config.num_qualities} lambdas")
    manifest = {
        "format": "segpic-weights",
        "version": 2,
        "model": config.name,
        "dtype": str(dtype).removeprefix("torch."),
        "config": config.to_dict(),
        "levels": len(qualities),
        "qualities": qualities,
        "files": files,
        "weights_id": weights_id_from_hashes([f["sha256"] for f in files]),
        "parameters": parameters,  # of one network
        "training": training or {},
    }
    return write_manifest(out_dir, manifest)


class LevelSet:
    """The model of a fixed-rate weights folder: the `SegPIC` networks of its
    quality levels, each loaded (and its shards verified) on first use. Offers
    what `Codec` uses of a model: `config`, `to`, `eval`, `compress`, `decompress`
    (q is the gain index, quality - 1, and must be a whole number)."""

    def __init__(self, manifest_path: Path, manifest: dict, config: ModelConfig,
                 verify: bool = True):
        self.manifest_path = Path(manifest_path)
        self.manifest = manifest
        self.config = config
        self.verify = verify
        self.device = torch.device("cpu")
        self._networks: dict[int, SegPIC] = {}
        entries = {f["name"]: f for f in manifest.get("files", [])}
        self._files: list[list[dict]] = []
        for level in manifest["qualities"]:
            try:
                self._files.append([entries[name] for name in level["files"]])
            except (KeyError, TypeError):
                raise WeightsError(f"{manifest_path}: quality {level.get('quality')} "
                                   "lists shards that the manifest does not") from None
        if len(self._files) != config.num_qualities:
            raise WeightsError(f"{manifest_path}: {len(self._files)} levels for "
                               f"{config.num_qualities} lambdas")

    @property
    def num_qualities(self) -> int:
        return len(self._files)

    def to(self, device: torch.device | str) -> LevelSet:
        self.device = torch.device(device)
        for net in self._networks.values():
            net.to(self.device)
        return self

    def eval(self) -> LevelSet:
        return self

    def network(self, q: float) -> SegPIC:
        """The network of gain index q (quality q + 1), loaded on first use."""
        if q != int(q) or not 0 <= q < self.num_qualities:
            raise WeightsError(f"fixed-rate weights have qualities 1..{self.num_qualities}; "
                               f"quality {q + 1:g} has no network")
        level = int(q)
        if level not in self._networks:
            prefix = level_prefix(level + 1)
            state = read_state(self.manifest_path.parent, self._files[level], self.verify)
            state = {k[len(prefix):]: v.float() for k, v in state.items()}
            try:
                net = model_from_state(self.config, state)
            except RuntimeError as exc:
                raise WeightsError(f"weights of quality {level + 1} do not fit model "
                                   f"{self.config.name!r}: {exc}") from None
            self._networks[level] = net.to(self.device).eval()
            net.coding_only()  # a LevelSet only codes: its exact entropy path, built now
        return self._networks[level]

    def compress(self, x: torch.Tensor, q: float, grid: int, reconstruct: bool = True,
                 exact: bool = False) -> tuple[CodedStreams, torch.Tensor | None]:
        return self.network(q).compress(x, 0.0, grid, reconstruct=reconstruct, exact=exact)

    def decompress(self, streams: CodedStreams, q: float, grid: int, exact: bool = False
                   ) -> torch.Tensor:
        return self.network(q).decompress(streams, 0.0, grid, exact=exact)

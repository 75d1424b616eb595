"""Weights on disk: fp16 safetensors shards (no pickle) and a JSON manifest.

    weights/<model>/manifest.json
    weights/<model>/model-00001-of-0000N.safetensors ...

The manifest holds the model config, the quality -> lambda table, the sha256 of
every shard, a short `weights_id` (first 4 bytes of a hash over the shard hashes;
written into every .spic header so a decoder can refuse foreign files), and how
the weights were trained (or where they were imported from).

A fixed-rate model (`ModelConfig.gain_units=False`, e.g. the authors' SegPIC
imported with `segpic import-weights`) has one network per quality level; its
folder (manifest version 2, see `levels.py`) lists each level's shards.
`loading.load_weights` builds the model of either kind from its folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ...errors import SegpicError
from ...shipped_data import shipped_weights_root
from ..config import ModelConfig
from ..networks.model import SegPIC

MANIFEST = "manifest.json"
MAX_SHARD_BYTES = 16 * 2**20 - 2**16  # 16 MiB per file, minus room for the header


class WeightsError(SegpicError, RuntimeError):
    """Weights are missing, damaged or do not fit."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_id_from_hashes(hashes: list[str]) -> str:
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:8]


def write_shards(state: dict[str, torch.Tensor], out_dir: Path, stem: str = "model"
                 ) -> list[dict]:
    """Write `state` as safetensors shards <stem>-0000i-of-0000N.safetensors of at most
    MAX_SHARD_BYTES; returns their manifest entries (name, sha256, bytes)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if size + nbytes > MAX_SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    files = []
    for i, shard in enumerate(shards):
        name = f"{stem}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tmp = out_dir / (name + ".tmp")
        save_file(shard, str(tmp))
        os.replace(tmp, out_dir / name)
        files.append({"name": name, "sha256": file_sha256(out_dir / name),
                      "bytes": (out_dir / name).stat().st_size})
    return files


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out_dir / MANIFEST)
    return out_dir / MANIFEST


def save_weights(model: SegPIC, out_dir: Path, training: dict | None = None,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write shards (fp16 unless `dtype` says otherwise) + manifest; returns the
    manifest path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous()
             for k, v in model.state_dict().items()}
    for old in out_dir.glob("model-*.safetensors"):
        old.unlink()
    files = write_shards(state, out_dir)
    config = model.config
    manifest = {
        "format": "segpic-weights",
        "version": 1,
        "model": config.name,
        "dtype": str(dtype).removeprefix("torch."),
        "config": config.to_dict(),
        "qualities": [{"quality": i + 1, "lambda": lam} for i, lam in enumerate(config.lambdas)],
        "files": files,
        "weights_id": weights_id_from_hashes([f["sha256"] for f in files]),
        "parameters": sum(int(t.numel()) for t in state.values()),
        "training": training or {},
    }
    return write_manifest(out_dir, manifest)


def read_manifest(path: Path) -> tuple[Path, dict]:
    path = Path(path)
    manifest_path = path / MANIFEST if path.is_dir() else path
    if not manifest_path.is_file():
        raise WeightsError(f"no weights manifest at {manifest_path}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read weights manifest {manifest_path}: {exc}") from None
    if manifest.get("format") != "segpic-weights":
        raise WeightsError(f"{manifest_path} is not a segpic weights manifest")
    return manifest_path, manifest


# the initialisers that nn.Conv2d, nn.Linear and our layers call in their
# constructors: random numbers that loading the weights overwrites at once
_INITIALISERS = ("kaiming_uniform_", "kaiming_normal_", "uniform_", "normal_",
                 "trunc_normal_", "xavier_uniform_", "xavier_normal_", "zeros_", "ones_",
                 "constant_")


@contextlib.contextmanager
def _no_random_init() -> Iterator[None]:
    """Construct modules without drawing their random initial weights (about half the
    construction time of a model whose weights are loaded next)."""
    saved = {name: getattr(torch.nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def model_from_state(config: ModelConfig, state: dict[str, torch.Tensor]) -> SegPIC:
    """A SegPIC network of `config` holding `state` (any float dtype; float32 after).
    The float32 tensors become the parameters (assign): no random initialisation and
    no second copy, which were most of the time of loading weights on a CPU. Raises
    RuntimeError (from load_state_dict) on a missing, unexpected or misshapen key."""
    with _no_random_init():
        model = SegPIC(config)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model


def read_state(folder: Path, entries: list[dict], verify: bool = True
               ) -> dict[str, torch.Tensor]:
    """The tensors of the listed shard files, each checked against its sha256."""
    state: dict[str, torch.Tensor] = {}
    for entry in entries:
        file = folder / entry["name"]
        if not file.is_file():
            raise WeightsError(f"weights file {file} is missing")
        if verify and file_sha256(file) != entry["sha256"]:
            raise WeightsError(f"weights file {file} is damaged (sha256 mismatch)")
        state.update(load_file(str(file)))
    return state


def default_weights_dir(model_name: str) -> Path:
    """$SEGPIC_WEIGHTS/<model> if set, else the shipped weights/<model>."""
    root = os.environ.get("SEGPIC_WEIGHTS")
    return (Path(root) if root else shipped_weights_root()) / model_name

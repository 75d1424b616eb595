"""Training: one variable-rate model for all quality levels.

Loss (Eq. 3/4): R(p) + R(y) + R(z) + lambda * 255^2 * MSE, with lambda drawn per
batch from the config's lambda set; the drawn lambda's index is the quality
level whose gains the batch uses, so one weights file covers every quality.
Masks (ground truth where present, else unsupervised) guide the RAT in training;
`masks="grid"` trains with the n x n grid instead (the ablation of Table 3).

Run it with `segpic train` (see `segpic train --help`).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...devices import select_device
from ..config import get_config
from ..networks.model import SegPIC
from ..weights.folder import WeightsError, save_weights
from ..weights.loading import load_weights
from .data import CropSampler, load_training_set


@dataclass
class TrainOptions:
    data: Path
    run_dir: Path
    model: str = "small"
    steps: int = 1_000_000
    time_budget: float = 0.0  # seconds; 0 = no limit (then `steps` ends the run)
    batch_size: int = 16
    crop: int = 256
    lr: float = 1e-4
    lr_final_fraction: float = 0.05
    warmup_steps: int = 500
    masks: str = "auto"  # "auto": ground truth or unsupervised; "grid": grid partitions
    grid: int = 4
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast of the transforms on CUDA
    compile: bool = False
    init: Path | None = None
    resume: bool = True
    log_every: int = 50
    checkpoint_every: float = 300.0  # seconds
    eval_dir: Path | None = None
    eval_every: int = 0  # steps; 0 = only at the end (when eval_dir is set)
    eval_images: int = 24
    workers: int = 2


def rate_distortion(out: dict, x: torch.Tensor, lam: float) -> dict:
    b, _, h, w = x.shape
    num_pixels = b * h * w
    bits = {k: -v.sum() / math.log(2) for k, v in out["log_likelihoods"].items()}
    bpp = sum(bits.values()) / num_pixels
    mse = torch.mean((out["x_hat"].float() - x) ** 2)
    return {
        "loss": bpp + lam * 255**2 * mse,
        "bpp": bpp,
        "mse": mse,
        **{f"bpp_{k}": v / num_pixels for k, v in bits.items()},
    }


def lr_at(opts: TrainOptions, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(1, opts.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return opts.lr * warm * (opts.lr_final_fraction + (1 - opts.lr_final_fraction) * cosine)


def _log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def train(opts: TrainOptions, console=None) -> Path:
    """Run (or resume) training; returns the directory of the exported weights."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    random.seed(opts.seed)
    np.random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    device = select_device(opts.device)
    run_dir = Path(opts.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "log.jsonl"
    ckpt_path = run_dir / "checkpoint.pt"

    config = get_config(opts.model)
    if opts.init is not None:
        model, manifest = load_weights(opts.init, "cpu")
        if not isinstance(model, SegPIC):
            raise WeightsError(f"{opts.init} holds fixed-rate levels; training starts from "
                               "variable-rate weights only")
        config = model.config
        base_training = manifest.get("training", {})
        console.print(f"initialised from {opts.init} ({manifest['weights_id']})")
    else:
        model = SegPIC(config)
        base_training = {}
    if not config.gain_units:
        # one network per lambda would need a per-level loop and a levels export;
        # fixed-rate SegPIC weights come from `segpic import-weights`
        raise WeightsError(f"model {config.name!r} is fixed-rate (one network per lambda, "
                           "no gain units): training supports variable-rate models such as "
                           "'small'; import the authors' weights with segpic import-weights")
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr,
                                 fused=device.type == "cuda")

    step, elapsed_before, images_seen = 0, 0.0, 0
    if opts.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed_before = state["step"], state["elapsed"]
        images_seen = state["images_seen"]
        console.print(f"resumed from {ckpt_path} at step {step}")

    samples = load_training_set(opts.data, run_dir / "mask-cache", workers=opts.workers,
                                min_size=64)
    sampler = CropSampler(samples, opts.crop, device, seed=opts.seed + step)
    console.print(f"{len(sampler)} training images, model {config.name} "
                  f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params) on {device}")
    use_masks = opts.masks != "grid"
    use_amp = opts.amp and device.type == "cuda"
    if opts.compile:
        for name in ("g_a1", "g_a2", "g_s0", "g_s1"):
            setattr(model, name, torch.compile(getattr(model, name)))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    lambdas = config.lambdas
    gen = np.random.default_rng(opts.seed + 7 * step)
    start = time.time()
    last_ckpt = start
    totals: dict[str, float] = {}
    count = 0

    def elapsed() -> float:
        return elapsed_before + time.time() - start

    def progress_fraction() -> float:
        p = step / opts.steps
        if opts.time_budget > 0:
            p = max(p, elapsed() / opts.time_budget)
        return p

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": _plain_state(model), "optimizer": optimizer.state_dict(),
                    "step": step, "elapsed": elapsed(), "images_seen": images_seen,
                    "options": {k: str(v) for k, v in asdict(opts).items()}}, tmp)
        os.replace(tmp, ckpt_path)

    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.description}"),
                        TimeElapsedColumn(), console=console, transient=False)
    with progress:
        task = progress.add_task("", total=1.0)
        while progress_fraction() < 1.0:
            qi = int(gen.integers(0, len(lambdas)))
            lam = lambdas[qi]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(opts, step, progress_fraction())
            x, masks = sampler.sample(opts.batch_size)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(x, float(qi), masks=masks if use_masks else None, grid=opts.grid)
            terms = rate_distortion(out, x, lam)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            images_seen += opts.batch_size
            # accumulate on the device: reading a value back every step would stall
            # the GPU queue, so the host only syncs at logging time
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + v.detach()
            totals["psnr"] = totals.get("psnr", 0.0) - 10 * torch.log10(
                terms["mse"].detach().clamp_min(1e-10))
            count += 1
            if step % opts.log_every == 0:
                record = {k: float(v) / count for k, v in totals.items()}
                if not math.isfinite(record["loss"]):
                    raise RuntimeError(f"training diverged at step {step} (non-finite loss)")
                record.update(step=step, images_seen=images_seen, elapsed=round(elapsed(), 1),
                              lr=optimizer.param_groups[0]["lr"])
                _log(log_path, record)
                progress.update(task, completed=min(1.0, progress_fraction()),
                                description=f"step {step} loss {record['loss']:.3f} "
                                f"bpp {record['bpp']:.3f} psnr {record['psnr']:.2f}")
                totals, count = {}, 0
            if time.time() - last_ckpt > opts.checkpoint_every:
                save_checkpoint()
                _export(model, run_dir, config.name, step, images_seen, elapsed(), opts,
                        base_training, device)
                last_ckpt = time.time()
            if opts.eval_dir and opts.eval_every and step % opts.eval_every == 0:
                _evaluate(model, opts, log_path, step, console)
                model.train()

    save_checkpoint()
    weights_dir = _export(model, run_dir, config.name, step, images_seen, elapsed(), opts,
                          base_training, device)
    if opts.eval_dir:
        _evaluate(model, opts, log_path, step, console)
    console.print(f"done: {step} steps, {images_seen} crops; weights in {weights_dir}")
    return weights_dir


def _plain_state(model: SegPIC) -> dict:
    # torch.compile wraps submodules; store the plain parameter names
    return {k.replace("._orig_mod", ""): v for k, v in model.state_dict().items()}


def _export(model: SegPIC, run_dir: Path, name: str, step: int, images_seen: int,
            elapsed: float, opts: TrainOptions, base: dict, device: torch.device) -> Path:
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    prior_steps = int(base.get("steps", 0))
    training = {
        "steps": prior_steps + step,
        "images_seen": int(base.get("images_seen", 0)) + images_seen,
        "train_seconds": round(float(base.get("train_seconds", 0)) + elapsed, 1),
        "hardware": hardware if not base.get("hardware") else f"{base['hardware']}; {hardware}",
        "dataset": str(opts.data),
        "masks": opts.masks,
        "batch_size": opts.batch_size,
        "crop": opts.crop,
        "lr": opts.lr,
        "date": time.strftime("%Y-%m-%d"),
        "initialised_from": str(opts.init) if opts.init else None,
    }
    return save_weights(_unwrap(model), run_dir / "weights", training).parent


def _evaluate(model: SegPIC, opts: TrainOptions, log_path: Path, step: int, console) -> None:
    """Evaluation on real bitstreams (file bytes), every quality level."""
    from ...image_io import list_images
    from ..codec import Codec
    from .evaluation import evaluate

    model.eval()
    codec = Codec.from_model(_unwrap(model))
    paths = list_images(Path(opts.eval_dir))[: opts.eval_images]
    qualities = range(1, model.config.num_qualities + 1)
    for record in evaluate(codec, paths, qualities):
        _log(log_path, {"eval": True, "step": step, **record})
        console.print(f"eval step {step} q{record['quality']:g}: {record['bpp']:.4f} bpp, "
                      f"{record['psnr']:.2f} dB")


def _unwrap(model: SegPIC) -> SegPIC:
    plain = SegPIC(model.config)
    plain.load_state_dict(_plain_state(model))
    return plain.to(next(model.parameters()).device).eval()

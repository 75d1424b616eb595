"""What `segpic bench` measures inside MoRIC: one encode as a point of an RD
curve (with its stream sizes), the time of one optimisation step, decode
times, layered decoding. The bench reaches this module through the codec
registry (`codecs.get("moric").package + ".measure"`), so the shared layer never
imports MoRIC's modules. torch and the codec load lazily, inside each function.
"""

from __future__ import annotations

import ast
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any

import numpy as np

from .. import container


def default_steps() -> int:
    """The step budget of the default preset."""
    from .frontend import default_steps as steps

    return steps()


def default_features() -> int:
    """The synthesis width of the default ("medium") preset."""
    from .training.recipe import PRESETS

    return PRESETS["medium"].features


def recipe_overrides(items: list[str]) -> dict[str, Any]:
    """key=value strings -> recipe fields (values read as Python literals, else
    kept as strings); a bad item or an unknown field is a ValueError."""
    from .training.recipe import PRESETS

    names = {f.name for f in fields(PRESETS["medium"])}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in names:
            raise ValueError(f"--set {item}: give key=value with a recipe field "
                             f"({', '.join(sorted(names))})")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


@contextmanager
def preset_overridden(preset: str, overrides: dict[str, Any]) -> Iterator[None]:
    """The encoder reads its recipe from PRESETS: override it for one encode and
    put it back afterwards."""
    from .training.recipe import PRESETS

    saved = PRESETS[preset]
    if overrides:
        PRESETS[preset] = replace(saved, **overrides)
    try:
        yield
    finally:
        PRESETS[preset] = saved


def encode_point(pixels: np.ndarray, quality: float, *, steps: int | None = None,
                 time_limit: float | None = None, preset: str = "medium",
                 device: str = "cpu", seed: int = 0, regions: str = "auto",
                 region_count: int = 3, overrides: dict[str, Any] | None = None,
                 progress: Callable[[dict], None] | None = None
                 ) -> tuple[bytes, np.ndarray, float, dict[str, Any]]:
    """One encode to a real .spic file -> (file bytes, the encoder's
    reconstruction, encode seconds, the fields of this point that only MoRIC
    has: preset, steps done, parameter and contour bytes, regions)."""
    from . import codec

    h, w = pixels.shape[:2]
    with preset_overridden(preset, overrides or {}):
        enc = codec.encode(pixels, quality=quality, steps=steps, time_limit=time_limit,
                           preset=preset, device=device, seed=seed, progress=progress,
                           regions=regions, region_count=region_count)
    data = container.pack("moric", w, h, enc.payload, enc.streams)
    own = {"preset": preset, "steps": enc.steps,
           "params_bytes": len(enc.streams[0]), "regions_asked": regions,
           "regions": enc.regions,
           "contour_bytes": len(enc.streams[1]) if enc.regions > 1 else 0}
    return data, enc.reconstruction, enc.seconds, own


def decode_file(data: bytes) -> np.ndarray:
    """The pixels of a MoRIC .spic file (what `segpic decode` writes)."""
    from .decoder.decode import decode  # numpy only

    frame = container.read_frame(data)
    return decode(frame.payload, container.split_streams(data, frame),
                        frame.width, frame.height)


@contextmanager
def _training_steps(pixels: np.ndarray, features: int, regions: int, two_core: bool
                    ) -> Iterator[Callable[[], object]]:
    """A fresh optimisation of `pixels` (the medium recipe at `features`, `regions`
    auto regions) after three steps that allocate: yields a function that runs
    one more soft-rounded step. The caller sets torch's threads."""
    import torch

    from .contours.partition import auto_partition
    from .training.encoder import Budget, Optimisation
    from .training.recipe import PRESETS

    h, w = pixels.shape[:2]
    target = torch.from_numpy(pixels).permute(2, 0, 1).reshape(3, -1).float() / 255.0
    recipe = replace(PRESETS["medium"], features=features)
    labels = auto_partition(pixels, regions) if regions > 1 else None
    opt = Optimisation(target, h, w, 1e-3, recipe, Budget(10**6, None, time.perf_counter()),
                       two_core=two_core, labels=labels)
    model, optimizer = opt.new_candidate(0)

    def step() -> object:
        return opt.train_step(model, optimizer, "softround", 0.3, 0.2)

    try:
        for _ in range(3):
            step()
        yield step
    finally:
        if opt.cpu_loss is not None:
            opt.cpu_loss.close()


def step_seconds(pixels: np.ndarray, mode: str, features: int, repeats: int,
                 regions: int = 1) -> list[float]:
    """Seconds of each of `repeats` optimisation steps (after three that
    allocate). mode: two-core (rate and distortion on two threads, one intra-op
    thread each: the default on a CPU with two or more threads), one-thread, or
    omp2 (plain PyTorch intra-op parallelism on two threads)."""
    import torch

    torch.set_num_threads(2 if mode == "omp2" else 1)
    with _training_steps(pixels, features, regions, two_core=mode == "two-core") as step:
        return _timed(step, repeats)


def step_profile(pixels: np.ndarray, features: int, repeats: int, regions: int = 1
                 ) -> dict[str, float]:
    """Where one-thread optimisation steps spend their time: seconds per step of
    each piece the step labels (`cpu_loss.PIECES`), summed over the profiler's
    ranges, and of the whole step; "other" is what no piece covers (Python,
    the loss's bookkeeping). After three steps that allocate."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from .training.cpu_loss import PIECES

    torch.set_num_threads(1)
    with _training_steps(pixels, features, regions, two_core=False) as step, \
            profile(activities=[ProfilerActivity.CPU]) as prof:
        total = sum(_timed(step, repeats))
    names = {label: piece for piece, label in PIECES.items()}
    out = dict.fromkeys(PIECES, 0.0)
    for event in prof.key_averages():
        if event.key in names:  # microseconds, over all the steps
            out[names[event.key]] += event.cpu_time_total / 1e6 / repeats
    out["other"] = total / repeats - sum(out.values())
    out["step"] = total / repeats
    return out


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def decode_seconds(pixels: np.ndarray, repeats: int = 3) -> list[float]:
    """Seconds of each full decode of a quick one-region file (50 steps, preset
    fast: decode time does not depend on the encoder's budget; the encode on two
    threads, the numpy decoder on one)."""
    import torch

    from . import codec

    torch.set_num_threads(2)
    h, w = pixels.shape[:2]
    enc = codec.encode(pixels, quality=3.5, steps=50, preset="fast", regions="none")
    return _timed(lambda: codec.decode(enc.payload, enc.streams, w, h), repeats)


def layered_decode_rows(pixels: np.ndarray, steps: int, regions: int, repeats: int
                        ) -> Iterator[dict[str, Any]]:
    """A file with `regions` auto regions made in `steps` steps, then the time of
    a full decode and of decoding each region alone (median and minimum of
    `repeats`), one dict per decode."""
    from . import codec

    h, w = pixels.shape[:2]
    enc = codec.encode(pixels, quality=3.5, steps=steps, region_count=regions)
    full = _timed(lambda: codec.decode(enc.payload, enc.streams, w, h), repeats)
    yield {"regions": enc.regions, "decode": "full",
           "s_median": round(statistics.median(full), 3), "s_min": round(min(full), 3)}
    shares = np.bincount(enc.labels.ravel(), minlength=enc.regions) / enc.labels.size
    for r in range(enc.regions):
        t = _timed(lambda r=r: codec.decode(enc.payload, enc.streams, w, h, {r}), repeats)
        yield {"decode": f"region {r}", "share": round(float(shares[r]), 3),
               "s_median": round(statistics.median(t), 3), "s_min": round(min(t), 3),
               "vs_full": round(statistics.median(t) / statistics.median(full), 3)}

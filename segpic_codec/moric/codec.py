"""MoRIC's API: encode an image (an optimisation) and decode a payload + streams.

    encoded = encode(pixels, quality=3.5, preset="medium")
    settings = EncodeSettings(quality=3.5, steps=500)  # checked here, when made
    encoded = encode_with(pixels, settings)
    pixels = decode(encoded.payload, encoded.streams, width, height)
    layer = decode(encoded.payload, encoded.streams, width, height, regions={1})  # RGBA

Regions (MoRIC's partition): `regions="auto"` splits the image into
`region_count` regions (`partition.auto_partition`), an (H, W) integer array
gives them, "none" codes one region. Their contours travel in the file
(`contours`); the networks fit the partition the decoder will rebuild.

The decoder (`decoder`, numpy only) is exact integer arithmetic, entropy path,
upsampling and synthesis, so a file encoded on a GPU decodes identically on
any CPU. `encode` returns what `decode` outputs: the reconstruction is
computed by the decoder's own code (`decoder.decode.reconstruct`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..limits import MAX_DIMENSION, max_pixels
from . import layout
from .bitstream.arm_integer import IntegerArm
from .bitstream.latent_stream import encode_latents
from .bitstream.param_prior import load_prior_arrays
from .bitstream.param_quant import GroupCoding, encode_parameters, quantized_integers, search_steps
from .bitstream.parameters import read_parameters
from .contours.partition import auto_partition, check_partition
from .contours.stream import encode_partition
from .decoder.decode import decode, reconstruct, with_alpha
from .errors import MoricArgumentError
from .file_format import MAX_ABS_LATENT, MAX_CODED_REGIONS
from .networks.banded import gmn_cache
from .networks.model import MoricModel
from .options import DEFAULT_PRESET, DEFAULT_QUALITY, DEFAULT_REGION_COUNT
from .target_fit import (
    ParameterBytes,
    TargetRequest,
    controller_for,
    fit_size,
    jpeg_anchor,
    outcome,
)
from .training.encoder import Budget, Optimisation
from .training.latent_init import load_latent_init
from .training.recipe import (
    PRESETS,
    QUALITY_MAX,
    QUALITY_MIN,
    lambda_to_quality,
    quality_to_lambda,
)

__all__ = ["PRESETS", "EncodeSettings", "MoricEncoded", "decode", "encode", "encode_with"]


@dataclass(frozen=True)
class EncodeSettings:
    """What an encode is asked for besides the pixels and the partition: the
    quality, the budget (`steps` and/or `time_limit`, whichever ends first; with
    neither, the preset's step count), where it runs and its hooks. Checked once,
    when made: a bad value raises `MoricArgumentError`."""

    quality: float = DEFAULT_QUALITY
    steps: int | None = None
    time_limit: float | None = None
    preset: str = DEFAULT_PRESET
    device: str = "cpu"
    seed: int = 0
    progress: Callable[[dict], None] | None = None  # a dict every few steps (`encode`)
    should_stop: Callable[[], bool] | None = None  # checked every step
    target: TargetRequest | None = None  # instead of `quality`

    def __post_init__(self) -> None:
        if not QUALITY_MIN <= self.quality <= QUALITY_MAX:
            raise MoricArgumentError(f"quality must be in [{QUALITY_MIN:g}, "
                                     f"{QUALITY_MAX:g}], got {self.quality}")
        steps, time_limit = self.steps, self.time_limit
        if steps is not None and (int(steps) != steps or steps < 1):
            raise MoricArgumentError(f"steps must be a whole number >= 1, got {steps}")
        if time_limit is not None and not time_limit > 0:
            raise MoricArgumentError(f"time_limit must be positive, got {time_limit}")
        if self.preset not in PRESETS:
            raise MoricArgumentError(f"unknown preset {self.preset!r}; choose one of "
                                     f"{', '.join(PRESETS)}")
        if self.device not in ("cpu", "cuda"):
            raise MoricArgumentError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise MoricArgumentError("device 'cuda' requested but CUDA is not available")


@dataclass(frozen=True)
class _CodedPartition:
    """The partition as the decoder rebuilds it, and its contour stream."""

    contour_stream: bytes
    labels: np.ndarray  # (H, W) int32
    object_only: bool  # single-object coding: region 0 is not coded


@dataclass
class MoricEncoded:
    payload: bytes  # codec header (see layout)
    streams: list[bytes]  # [parameters, (contours,) latent grid 0 .. 6]
    reconstruction: np.ndarray  # (H, W, 3) uint8 (RGBA if object only): what decode() returns
    steps: int  # optimisation steps done
    interrupted: bool
    seconds: float
    labels: np.ndarray  # (H, W) int32: the partition as the decoder rebuilds it
    quality: float  # as in the header; with a target, that of the λ the run ended with
    target_met: bool | None = None  # with a target: met (a PSNR within PSNR_TOLERANCE)
    target_value: float | None = None  # with a target: the file's bytes, or its PSNR

    @property
    def regions(self) -> int:
        return int(self.labels.max()) + 1


def partition_of(pixels: np.ndarray, regions: str | np.ndarray, region_count: int
                 ) -> np.ndarray:
    """The (H, W) label map to code: "auto", "none" or a given label array."""
    height, width = pixels.shape[:2]
    if isinstance(regions, str):
        if regions == "none":
            return np.zeros((height, width), dtype=np.int32)
        if regions != "auto":
            raise MoricArgumentError(f"regions must be 'auto', 'none' or a label array, "
                                     f"got {regions!r}")
        if not 1 <= region_count <= MAX_CODED_REGIONS:
            raise MoricArgumentError(f"region count must be 1..{MAX_CODED_REGIONS}, "
                                     f"got {region_count}")
        return auto_partition(pixels, region_count)
    labels = np.asarray(regions)
    if labels.shape != (height, width):
        raise MoricArgumentError(f"the region labels are {labels.shape[1::-1]} wide x high, "
                                 f"the image is {width}x{height}")
    check_partition(labels, MAX_CODED_REGIONS)
    return labels


def object_partition(roi: np.ndarray, height: int, width: int) -> np.ndarray:
    """Labels of single-object coding: 0 outside the object, 1 on it."""
    mask = np.asarray(roi)
    if mask.shape != (height, width):
        raise MoricArgumentError(f"the object mask is {mask.shape[1::-1]} wide x high, "
                                 f"the image is {width}x{height}")
    mask = mask != 0
    if not mask.any():
        raise MoricArgumentError("the object mask is empty (no nonzero pixel)")
    if mask.all():
        raise MoricArgumentError("the object mask covers the whole image: encode "
                                 "without an object mask")
    return mask.astype(np.int32)


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3 \
            or pixels.dtype != np.uint8:
        raise MoricArgumentError("pixels must be an (H, W, 3) uint8 array")
    h, w = pixels.shape[:2]
    if h < 1 or w < 1 or h > MAX_DIMENSION or w > MAX_DIMENSION or h * w > max_pixels():
        raise MoricArgumentError(f"cannot encode a {w}x{h} image with MoRIC")


@contextmanager
def _one_intra_op_thread() -> Iterator[int]:
    """Run with one intra-op thread; yields the caller's thread count.

    MoRIC's tensors are small (a few channels): PyTorch gains little by splitting
    each operation, and on a busy machine every split waits for the slowest
    thread. The encoder uses a second core its own way (see `cpu_loss`)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield previous
    finally:
        torch.set_num_threads(previous)


def _integer_arm(model: MoricModel, coding: dict[tuple[str, str], GroupCoding]) -> IntegerArm:
    params = {}
    for name, p in model.arm.named_parameters():
        kind = "bias" if name.startswith("b") else "weight"
        e = coding[("arm", kind)].exponent
        params[name] = (quantized_integers([p], e, None)[0].numpy(), e)
    return IntegerArm(params)


def _quantise_networks(model: MoricModel, target: torch.Tensor, lmbda: float,
                       prior: dict[str, np.ndarray] | None, workers: int = 1
                       ) -> dict[tuple[str, str], GroupCoding]:
    """Round the latents (in place: what the search sees) and pick each network
    group's quantisation step by the rate-distortion loss (its distortions on
    up to `workers` threads: the same values for any number)."""
    latents = model.latents
    latents.set_integers(latents.integers().clamp(-MAX_ABS_LATENT, MAX_ABS_LATENT - 1))
    q = latents.integers().to(torch.float32)

    gmn = model.synthesis.gmn
    with torch.no_grad():
        cache: dict = {"mse": 0.0, "bits": 0.0, "dense": None, "taps": None, "gmn": None,
                       "projections": gmn_cache(model.height, model.width)}

        def refresh(module: str) -> tuple[float, float]:
            if module in ("arm", "all"):
                cache["bits"] = float(model.rate_bits(q))
            if module == "arm":
                return cache["mse"], cache["bits"]
            taps = model.upsampling.taps.detach()
            weights = torch.cat([p.detach().reshape(-1) for p in gmn.parameters()])
            if cache["taps"] is None or not torch.equal(cache["taps"], taps):
                # the upsampled latents, recomputed whenever the filters change
                cache["dense"], cache["taps"], cache["gmn"] = model.dense_latents(q), \
                    taps.clone(), None
            if cache["gmn"] is None or not torch.equal(cache["gmn"], weights):
                # the GMN's projections are kept while only the LSNs change
                cache["projections"], cache["gmn"] = gmn_cache(model.height, model.width), \
                    weights
            error = model.squared_error_value(target, cache["dense"], workers,
                                              cache["projections"])
            cache["mse"] = float(error) / (3 * model.drawn_pixels)
            return cache["mse"], cache["bits"]

        refresh("all")
        return search_steps(model.sent_modules(), refresh, lmbda, model.drawn_pixels, prior)


def _parameter_bytes(model: MoricModel, target: torch.Tensor, lmbda: float,
                     prior: dict[str, np.ndarray] | None, workers: int) -> int:
    """The parameter stream's bytes if the run ended now, at `lmbda`: the search
    of `_quantise_networks` on a copy (it rounds the latents in place)."""
    trial = copy.deepcopy(model).to("cpu")
    coding = _quantise_networks(trial, target.to("cpu"), lmbda, prior, workers)
    return len(encode_parameters(trial.sent_modules(), coding, prior))


def _code_latents(model: MoricModel, coding: dict[tuple[str, str], GroupCoding],
                  ints: torch.Tensor) -> tuple[dict, list[bytes], np.ndarray]:
    """Entropy-code the integer latents -> (their header fields, their streams, the
    flat canvas)."""
    coded = model.canvas.latent_index if model.keep is None else np.flatnonzero(model.keep)
    valid = ints.reshape(-1)[torch.from_numpy(coded)]
    low, high = int(valid.min()), int(valid.max())
    flat = ints.reshape(-1).to(torch.float64).numpy()
    streams = encode_latents(_integer_arm(model, coding), flat, model.canvas, low, high,
                             model.keep)
    return {"latent_low": low, "latent_high": high}, streams, flat


def _reconstruction(header: layout.Header, streams: list[bytes], flat: np.ndarray,
                    model: MoricModel) -> np.ndarray:
    """What `decode` outputs for this file, by the decoder's own code (its
    parameters read back from their stream, the latents as coded)."""
    labels = model.regions.labels
    only = model.regions.only if model.object_only else None
    pixels = reconstruct(header, read_parameters(header, streams[0]), flat, labels, only)
    return pixels if only is None else with_alpha(pixels, labels, only)


def encode(pixels: np.ndarray, quality: float = DEFAULT_QUALITY, steps: int | None = None,
           time_limit: float | None = None, preset: str = DEFAULT_PRESET, device: str = "cpu",
           seed: int = 0, progress: Callable[[dict], None] | None = None,
           should_stop: Callable[[], bool] | None = None,
           regions: str | np.ndarray = "auto", region_count: int = DEFAULT_REGION_COUNT,
           contour_mode: str = "auto", roi: np.ndarray | None = None) -> MoricEncoded:
    """Optimise a MoRIC decoder for `pixels` and code it.

    `regions`: "auto" (`region_count` regions), "none" or an (H, W) label
    array; `contour_mode`: auto | lossless | lossy (see `contours`; "auto" means
    lossless for an object mask).
    `roi`: an (H, W) mask (nonzero = the object): single-object coding, only
    the object is coded (`regions` is then not used); the decoder returns
    RGBA, transparent outside the (decoded) object.

    The budget is `steps` and/or `time_limit` (whichever ends first; with
    neither, the preset's step count). `progress` receives a dict (step, total,
    bpp, psnr, elapsed, eta) every few steps; `should_stop()` is checked every
    step and ends the optimisation early with a valid file of the best state."""
    settings = EncodeSettings(quality, steps, time_limit, preset, device, seed, progress,
                              should_stop)
    return encode_with(pixels, settings, regions, region_count, contour_mode, roi)


def encode_with(pixels: np.ndarray, settings: EncodeSettings,
                regions: str | np.ndarray = "auto", region_count: int = DEFAULT_REGION_COUNT,
                contour_mode: str = "auto", roi: np.ndarray | None = None) -> MoricEncoded:
    """`encode` with its settings made (and checked) beforehand."""
    _check_pixels(pixels)
    start = time.perf_counter()
    if roi is None:
        partition = partition_of(pixels, regions, region_count)
    else:
        # an object's outline is exact by default: pixels a lossy contour leaves
        # out of the object would be lost (transparent), not just drawn by
        # another region's network
        partition = object_partition(roi, pixels.shape[0], pixels.shape[1])
        contour_mode = "lossless" if contour_mode == "auto" else contour_mode
    contour_stream, labels = encode_partition(partition, contour_mode)
    coded = _CodedPartition(contour_stream, labels, roi is not None)
    with _one_intra_op_thread() as threads:
        two_core = settings.device == "cpu" and threads >= 2
        return _encode(pixels, settings, coded, two_core, start)


def _encode(pixels: np.ndarray, settings: EncodeSettings, partition: _CodedPartition,
            two_core: bool, start: float) -> MoricEncoded:
    labels, object_only = partition.labels, partition.object_only
    several = int(labels.max()) > 0
    if object_only and not several:  # lossy contours cannot lose a label (`contours`)
        raise AssertionError("the object was lost in its contours")
    recipe = PRESETS[settings.preset]
    steps = settings.steps
    if steps is None and settings.time_limit is None:
        steps = recipe.steps
    height, width = pixels.shape[:2]
    lmbda = quality_to_lambda(settings.quality)
    request = settings.target
    parameters = ParameterBytes()
    controller = None if request is None else controller_for(
        request, int((labels != 0).sum()) if object_only else height * width,
        height * width, partition.contour_stream if several else None, jpeg_anchor(pixels),
        parameters)
    if controller is not None:
        controller.gain = recipe.target_gain
    target = torch.from_numpy(np.array(pixels, copy=True)).to(device=settings.device)
    target = target.permute(2, 0, 1).reshape(3, -1).to(torch.float32) / 255.0
    if object_only:  # nothing is drawn outside the object: no error there
        target = target * torch.from_numpy(labels.reshape(-1) != 0).to(target)
    # the networks start from the shipped prior, and their parameters are coded
    # as differences from it, where one fits the architecture
    prior = load_prior_arrays(recipe.features, recipe.activation) if recipe.prior else None
    latent_init = load_latent_init(recipe.latent_init) if recipe.latent_init else None
    probe = None
    if request is not None and request.target.rate and recipe.probe_parameters:
        def probe(model: MoricModel, lmbda: float) -> None:
            parameters.measured = (lambda_to_quality(lmbda), _parameter_bytes(
                model, target, lmbda, prior, 2 if two_core else 1))
    optimisation = Optimisation(target, height, width, lmbda, recipe,
                                Budget(steps, settings.time_limit, start), settings.seed,
                                settings.progress, settings.should_stop, two_core=two_core,
                                labels=labels if several else None, object_only=object_only,
                                prior=prior, latent_init=latent_init, controller=controller,
                                parameter_probe=probe)
    model, _ = optimisation.run()
    model = model.to("cpu")
    target = target.to("cpu")
    # with a target, the quality of the λ the run ended with
    quality = settings.quality if request is None else lambda_to_quality(optimisation.lmbda)
    contours = [partition.contour_stream] if model.arch.regions > 1 else []
    trained = {name: p.detach().clone() for name, p in model.named_parameters()}

    def code(lmbda: float) -> tuple[layout.Header, list[bytes], np.ndarray]:
        """The file with the networks quantised at `lmbda` (from the trained values)."""
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(trained[name])
        coding = _quantise_networks(model, target, lmbda, prior, 2 if two_core else 1)
        fields, latent_streams, flat = _code_latents(model, coding, model.latents.integers())
        header = layout.Header(quality=quality, preset=settings.preset,
                               steps=optimisation.steps_done,
                               interrupted=optimisation.interrupted, features=recipe.features,
                               activation=recipe.activation, regions=model.arch.regions,
                               object_only=object_only, prior_coded=prior is not None,
                               coding={k: (c.exponent, c.model) for k, c in coding.items()},
                               **fields)
        streams = [encode_parameters(model.sent_modules(), coding, prior), *contours,
                   *latent_streams]
        return header, streams, flat

    coded = code(optimisation.lmbda)
    if request is not None and request.target.rate:
        coded = fit_size(request, height * width, coded, code, optimisation.lmbda,
                         lambda c: request.file_size(layout.pack(c[0]), c[1]))
    header, streams, flat = coded
    reconstruction = _reconstruction(header, streams, flat, model)
    met, value = None, None
    if request is not None:
        met, value = outcome(request, layout.pack(header), streams, pixels, reconstruction,
                             labels, object_only)
    return MoricEncoded(layout.pack(header), streams, reconstruction, optimisation.steps_done,
                        optimisation.interrupted, time.perf_counter() - start, labels,
                        quality, met, value)

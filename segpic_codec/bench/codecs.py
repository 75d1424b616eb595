"""The codecs the bench measures. A codec is what it is (key, name, the libraries
and options it runs with, its settings) and a run() that encodes one image at one
setting to real bytes in memory and decodes them back, timing each half.

Each codec is made by a factory that receives the run's RunConfig and returns a
BenchCodec, a list of them (one per curve: segpic on the CPU and on CUDA, or one
per step budget), or a one-line reason when its library is missing (the codec is
then skipped with a note). Adding a codec is its factory plus one line in CODECS;
a codec that takes minutes per image is registered as `slow(make_it)`, and one
that optimises for a number of steps builds its curves with per_step_budget().
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .common import BenchError, codec_measure, note, version

if TYPE_CHECKING:
    from .config import RunConfig

# CompressAI made jpeg.json / webp.json with Pillow at quality 5, 10, ..., 95 (19
# points; our Pillow reproduces their q=5 and q=95 file sizes to 4 digits), so
# our JPEG and WebP use the same grid and can be compared setting by setting.
COMPRESSAI_QUALITIES = tuple(range(5, 100, 5))


@dataclass
class Measurement:
    nbytes: int
    pixels: np.ndarray  # decoded (H, W, 3) uint8
    enc_s: float
    dec_s: float


@dataclass
class BenchCodec:
    """One codec as the bench drives it: a quality grid and a run() that encodes
    to real bytes and decodes them back, timing each half separately."""

    key: str
    name: str
    description: str
    settings: tuple[float, ...]
    quick_settings: tuple[float, ...]
    threads: str  # what the CPU thread count is for this codec, stated in the table
    run: Callable[[np.ndarray, float], Measurement]
    param: str = "quality"
    label: str = ""  # legend text on the plot (default: name)
    steps: int | None = None  # the optimisation step budget it runs with, if it takes one
    slow: bool = False  # minutes per image: no warm-up, a progress line per setting
    family: str = ""  # the CODECS key that made it (set by build_codecs)


Made = BenchCodec | list[BenchCodec] | str
Factory = Callable[["RunConfig"], Made]
F = TypeVar("F", bound=Callable[..., Made])


def slow(factory: F) -> F:
    """Register a codec as slow (minutes per image, e.g. overfitted per image): it
    is left out of the default codec list, runs only on images chosen with
    --images or --limit (or --quick), and gets no warm-up run."""
    factory.slow = True  # type: ignore[attr-defined]
    return factory


def steps_label(steps: int) -> str:
    """1000 -> "1k", 1500 -> "1.5k", 500 -> "500"."""
    return f"{steps / 1000:g}k" if steps >= 1000 and steps % 100 == 0 else str(steps)


def per_step_budget(cfg: RunConfig, make: Callable[[int], BenchCodec],
                    default: int) -> list[BenchCodec]:
    """The curves of a codec that takes an optimisation step budget: one per
    --steps budget, keyed and named by it ("moric-1k", "MoRIC (1k steps)"); without
    --steps, one curve at the codec's own default budget under its plain key.
    `make(steps)` builds the codec for one budget."""
    if not cfg.steps:
        return [replace(make(default), steps=default)]
    curves = []
    for steps in cfg.steps:
        c, lbl = make(steps), steps_label(steps)
        curves.append(replace(c, key=f"{c.key}-{lbl}", name=f"{c.name} ({lbl} steps)",
                              label=f"{c.label or c.name}, {lbl} steps", steps=steps))
    return curves


# ------------------------------------------------------------------ Pillow codecs
def _pillow_run(fmt: str, save_kwargs: Callable[[float], dict[str, Any]],
                expect_format: str) -> Callable[[np.ndarray, float], Measurement]:
    def run(pixels: np.ndarray, setting: float) -> Measurement:
        from PIL import Image

        img = Image.fromarray(pixels)  # not timed: array -> PIL is not codec work
        buf = io.BytesIO()
        t0 = time.perf_counter()
        img.save(buf, format=fmt, **save_kwargs(setting))
        t1 = time.perf_counter()
        data = buf.getvalue()
        t2 = time.perf_counter()
        # Pillow decodes lazily: load() and the array copy belong to the decode time
        with Image.open(io.BytesIO(data)) as rec:
            rec.load()
            fmt_read = rec.format
            out = np.asarray(rec.convert("RGB"))
        t3 = time.perf_counter()
        if fmt_read != expect_format or out.shape != pixels.shape:
            raise RuntimeError(f"decoded a {fmt_read} {out.shape} image, expected "
                               f"{expect_format} {pixels.shape}")
        return Measurement(len(data), out, t1 - t0, t3 - t2)

    return run


def make_jpeg(cfg: RunConfig) -> Made:
    import PIL
    from PIL import features

    return BenchCodec(
        "jpeg", "JPEG",
        f"JPEG. Pillow {PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}), "
        "Pillow defaults (4:2:0, baseline, no optimize), as CompressAI",
        COMPRESSAI_QUALITIES, (10, 30, 50, 75), "1 (libjpeg-turbo is single-threaded)",
        _pillow_run("JPEG", lambda q: {"quality": int(q)}, "JPEG"))


def make_webp(cfg: RunConfig) -> Made:
    import PIL
    from PIL import features

    return BenchCodec(
        "webp", "WebP",
        f"WebP. Pillow {PIL.__version__} (libwebp {features.version('webp')}), "
        "Pillow defaults (lossy, method 4), as CompressAI",
        COMPRESSAI_QUALITIES, (10, 30, 50, 75), "1 (libwebp lossy is single-threaded)",
        _pillow_run("WEBP", lambda q: {"quality": int(q)}, "WEBP"))


def make_avif(cfg: RunConfig) -> Made:
    import PIL
    from PIL import features

    threads = cfg.threads
    if features.check("avif"):
        from PIL import AvifImagePlugin, _avif

        # the decoder takes its thread count from this module setting
        AvifImagePlugin.DEFAULT_MAX_THREADS = threads
        source = (f"Pillow {PIL.__version__} (libavif {features.version('avif')}: "
                  f"{_avif.codec_versions()})")
    else:
        try:
            import pillow_avif  # noqa: F401  (registers AVIF with Pillow)
        except ImportError:
            return ("AVIF skipped: this Pillow has no AVIF support and pillow-avif-plugin "
                    "is not installed (pip install pillow-avif-plugin)")
        source = f"pillow-avif-plugin {version('pillow-avif-plugin')}"
    # 4:4:4 because PSNR is measured on RGB (on six Kodak images it beat 4:2:0 by
    # 1% BD-rate); speed 6 is libavif's default
    return BenchCodec(
        "avif", "AVIF", f"AVIF. {source}, 4:4:4, speed 6",
        (5, 12, 20, 28, 36, 44, 52, 60, 68, 76), (10, 30, 50, 70),
        f"{threads} (libavif max_threads)",
        _pillow_run("AVIF", lambda q: {"quality": int(q), "subsampling": "4:4:4", "speed": 6,
                                       "max_threads": threads}, "AVIF"))


def make_jxl(cfg: RunConfig) -> Made:
    threads = cfg.threads
    try:
        import pillow_jxl  # noqa: F401  (registers JXL with Pillow)
        from pillow_jxl import JpegXLImagePlugin
    except ImportError:
        return ("JPEG XL skipped: pillow-jxl-plugin is not installed "
                "(pip install pillow-jxl-plugin)")
    if hasattr(JpegXLImagePlugin, "DECODE_THREADS"):
        JpegXLImagePlugin.DECODE_THREADS = threads
    # libjxl cannot go below about 0.15 bpp on Kodak (its largest distance is 25)
    return BenchCodec(
        "jxl", "JPEG XL",
        f"JPEG XL. pillow-jxl-plugin {version('pillow-jxl-plugin')} (libjxl), effort 7",
        (0, 10, 20, 30, 40, 50, 60, 70, 80, 85), (10, 40, 70, 85), f"{threads} (libjxl threads)",
        _pillow_run("JXL", lambda q: {"quality": int(q), "effort": 7, "num_threads": threads},
                    "JXL"))


def make_heic(cfg: RunConfig) -> Made:
    threads = cfg.threads
    try:
        import pillow_heif
    except ImportError:
        return "HEIC skipped: pillow-heif is not installed (pip install pillow-heif)"
    pillow_heif.register_heif_opener()
    info = pillow_heif.libheif_info()
    encoder = info.get("HEIF") or ""
    if not encoder:
        return "HEIC skipped: the libheif in pillow-heif has no HEVC encoder"
    pillow_heif.options.DECODE_THREADS = threads
    x265 = "x265" in encoder

    def kwargs(q: float) -> dict[str, Any]:
        # a fresh dict per call: pillow-heif writes into enc_params
        enc: dict[str, str] = {"x265:pools": str(threads)} if x265 else {}
        return {"quality": int(q), "chroma": 420, "enc_params": enc}

    # 4:2:0 (libheif's default): on six Kodak images it beat 4:4:4 by 2.8% BD-rate
    # (<= 2 bpp) and by ~10% below 0.5 bpp, losing only above ~1 bpp. libheif's
    # x265 defaults otherwise (preset slow, tune ssim: tune psnr gave a worse
    # RGB-PSNR curve on Kodak).
    return BenchCodec(
        "heic", "HEIC (x265)",
        f"HEIC. pillow-heif {version('pillow-heif')}, libheif {info.get('libheif', '?')}, "
        f"{encoder}, 4:2:0, libheif's x265 defaults",
        (10, 15, 20, 25, 30, 35, 40, 45, 50, 55), (10, 25, 40, 50),
        f"{threads} (x265 pools, libde265 decode threads)" if x265 else str(threads),
        _pillow_run("HEIF", kwargs, "HEIF"))


# ------------------------------------------------------------------ segpic
def make_segpic(cfg: RunConfig) -> Made:
    """segpic on cfg.device; with "auto", on the CPU always (the reference numbers)
    and on CUDA as well when there is one."""
    import torch

    devices = [cfg.device]
    if cfg.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [_segpic_on(d, cfg.weights) for d in devices]


def _segpic_on(device: str, weights: Path | None) -> BenchCodec:
    import inspect

    import torch

    from .. import codecs as registry

    try:
        encoder = registry.load_encoder("segpic", weights=weights, device=device)
    except (ValueError, OSError) as exc:  # WeightsError, CodecError, unreadable files
        raise BenchError(f"segpic: {exc}") from None
    codec = encoder.coder  # the loaded network: its device, levels, weights id, decode
    cuda = codec.device.type == "cuda"
    # time the real file path: encode without the side reconstruction when the
    # API can skip it (the CLI's `segpic encode` does)
    skip_rec = "reconstruct" in inspect.signature(encoder.encode).parameters
    levels = tuple(float(q) for q in range(1, codec.num_qualities + 1))

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def run(pixels: np.ndarray, setting: float) -> Measurement:
        kwargs = {"reconstruct": False} if skip_rec else {}
        sync()
        t0 = time.perf_counter()
        res = encoder.encode(pixels, quality=setting, **kwargs)
        sync()
        t1 = time.perf_counter()
        out = codec.decode(res.data)
        sync()
        t2 = time.perf_counter()
        rec = getattr(res, "reconstruction", None)
        if rec is not None and not np.array_equal(rec, out):
            raise RuntimeError("decoded pixels differ from the encoder's reconstruction")
        return Measurement(len(res.data), out, t1 - t0, t2 - t1)

    where = (f"CUDA ({torch.cuda.get_device_name(codec.device)})" if cuda
             else f"CPU, {torch.get_num_threads()} torch threads")
    return BenchCodec(
        "segpic-cuda" if cuda else "segpic", "segpic (CUDA)" if cuda else "segpic",
        f"segpic model {codec.model_name}, weights {codec.weights_id}, real .spic files, "
        f"{where}, torch {torch.__version__}",
        levels, (levels[0], levels[-1]),
        "GPU" if cuda else f"{torch.get_num_threads()} (torch)", run,
        label=f"segpic {codec.model_name}, weights {codec.weights_id}"
              + (", CUDA" if cuda else ""))


# MoRIC's bench qualities: the lambdas of Cool-Chic's published per-image Kodak
# points (0.02, 0.004, 0.001, 0.0004), so BD-rates against them share a range.
MORIC_QUALITIES = (1.0, 2.5, 3.8, 4.7)


def make_moric(cfg: RunConfig, regions: str = "auto") -> Made:
    """segpic's MoRIC (overfitted per image, no weights): one curve per --steps
    budget; each run encodes to a real .spic file and decodes it on the CPU.
    regions: "auto" (the default partition, 3 regions) or "none" (one region)."""
    import torch

    from .. import codecs as registry

    device = "cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    where = (f"CUDA ({torch.cuda.get_device_name()})" if device == "cuda"
             else f"CPU, {torch.get_num_threads()} torch threads")

    def make_one(steps: int) -> BenchCodec:
        def run(pixels: np.ndarray, setting: float) -> Measurement:
            encoder = registry.load_encoder("moric", device=device, steps=steps)
            t0 = time.perf_counter()
            res = encoder.encode(pixels, quality=setting, regions=regions)
            t1 = time.perf_counter()
            out = registry.decode(res.data)
            t2 = time.perf_counter()
            if res.reconstruction is not None and not np.array_equal(res.reconstruction, out):
                raise RuntimeError("decoded pixels differ from the encoder's reconstruction")
            return Measurement(len(res.data), out, t1 - t0, t2 - t1)

        one = regions == "none"
        return BenchCodec(
            "moric-n1" if one else "moric", "MoRIC, 1 region" if one else "MoRIC",
            f"segpic's MoRIC, {'one region' if one else 'auto regions (N=3)'}, {steps} "
            "steps per image, real "
            f".spic files, encoded on {where}, decoded on the CPU, torch {torch.__version__}",
            MORIC_QUALITIES, (MORIC_QUALITIES[0], MORIC_QUALITIES[-1]),
            "GPU" if device == "cuda" else f"{torch.get_num_threads()} (torch)", run,
            label=("MoRIC N=1 (ours)" if one else "MoRIC (ours)")
            + (", CUDA" if device == "cuda" else ""))

    return per_step_budget(cfg, make_one, default=codec_measure("moric").default_steps())


# ------------------------------------------------------------------ registry
# --codecs keys -> factories, in table order. One line per codec; slow(make_x) for
# a codec that takes minutes per image.
CODECS: dict[str, Factory] = {
    "segpic": make_segpic,
    "jpeg": make_jpeg,
    "webp": make_webp,
    "avif": make_avif,
    "jxl": make_jxl,
    "heic": make_heic,
    "moric": slow(make_moric),
    "moric-n1": slow(partial(make_moric, regions="none")),
}


def is_slow(key: str) -> bool:
    return bool(getattr(CODECS[key], "slow", False))


def default_codecs() -> tuple[str, ...]:
    """What runs without --codecs: every codec that is not slow."""
    return tuple(k for k in CODECS if not is_slow(k))


def build_codecs(cfg: RunConfig) -> list[BenchCodec]:
    """The codecs asked for, in table order; codecs whose library is missing are
    dropped with a one-line note, and --steps is ignored with a warning by the
    codecs that take no step budget."""
    codecs: list[BenchCodec] = []
    no_steps: list[str] = []
    for key in cfg.codecs:
        made = CODECS[key](cfg)
        if isinstance(made, str):
            note(cfg.notes, made)
            continue
        made = [made] if isinstance(made, BenchCodec) else list(made)
        if cfg.steps and all(c.steps is None for c in made):
            no_steps.append(key)
        codecs += [replace(c, family=key, slow=c.slow or is_slow(key)) for c in made]
    if no_steps:
        note(cfg.notes, f"--steps {','.join(map(str, cfg.steps))} ignored by "
                        f"{', '.join(no_steps)}: they take no step budget", kind="warning")
    if not codecs:
        raise BenchError("no codec left to measure")
    return codecs

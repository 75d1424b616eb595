"""`segpic bench`: rate-distortion and speed of segpic against classic image codecs.

Every codec writes a real file in memory (segpic: a real .spic stream; the others:
Pillow or a Pillow plugin saving to a BytesIO), the file is decoded back, and
bpp = 8 * file bytes / pixels. PSNR is on 8-bit RGB, MS-SSIM comes from
pytorch-msssim (data_range=255, RGB, float32), both against the 8-bit source.
Per setting, bpp, PSNR and MS-SSIM are the means over the images (PSNR: the mean
of per-image PSNR), exactly as CompressAI's results are made, so the JSON files
written here can be compared with (and plotted by) CompressAI's tools.

    segpic bench                       # Kodak, every codec, bench/results/kodak
    segpic bench --quick               # 2 images, 2-4 settings per codec (CI)
    segpic bench photos/ --out /tmp/b --codecs segpic,jpeg --threads 4

Heavy imports (matplotlib, pytorch-msssim, Pillow plugins) stay inside functions
so that `segpic --help` stays fast. Every failure is one line and a non-zero exit
(click.ClickException), never a traceback.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import numpy as np

import segpic_codec

REPO = Path(segpic_codec.__file__).resolve().parent.parent
DEFAULT_SRC = REPO / ".." / "shared" / "data" / "kodak"
DEFAULT_ANCHORS = REPO / ".." / "shared" / "anchors" / "kodak"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}
QUICK_IMAGES = 2

# BD-rate convention (see ../shared/anchors/README.md): cubic fit of ln(bpp) as a
# function of PSNR, integrated over the PSNR interval both curves cover. Points
# above 2 bpp are left out of the fit: the published curves run up to 3.6-4.7 bpp
# (47 dB), and one cubic over 26-47 dB bends the 0.1-1.5 bpp part that learned
# codecs are compared on. With this window the published points give the figures
# that README quotes (SegPIC paper -9.9%, MoRIC ~0%, BPG +27%, WebP +86% vs VTM);
# fitting every point gives BPG +22% and WebP +78% instead.
BD_MAX_BPP = 2.0
# Less common PSNR range than this and the number would be an extrapolation: "n/a".
BD_MIN_OVERLAP_DB = 1.0
# PSNR of an exact reconstruction (infinite otherwise); keeps the means finite.
PSNR_CAP = 100.0

# CompressAI made jpeg.json / webp.json with Pillow at quality 5, 10, ..., 95 (19
# points; our Pillow reproduces their q=5 and q=95 file sizes to 4 digits), so
# our JPEG and WebP use the same grid and can be compared setting by setting.
COMPRESSAI_QUALITIES = tuple(range(5, 100, 5))

# Published curves drawn on the plot (file stems in the anchors folder), in order.
# Short names and colours: the published JPEG/WebP share the colour of ours (the
# harness check is visible at a glance), the SegPIC paper that of segpic.
PLOTTED_ANCHORS: dict[str, tuple[str, str]] = {
    "vtm": ("VTM", "black"),
    "bpg_444_x265_ycbcr": ("BPG 444 x265", "0.5"),
    "compressai-bmshj2018-hyperprior_mse_cpu": ("bmshj2018-hyperprior (CompressAI)", "#9ecae1"),
    "compressai-mbt2018-mean_mse_cpu": ("mbt2018-mean (CompressAI)", "#4292c6"),
    "compressai-cheng2020-anchor_mse_cpu": ("cheng2020-anchor (CompressAI)", "#2171b5"),
    "compressai-cheng2020-attn_mse_cpu": ("cheng2020-attn (CompressAI)", "#08306b"),
    "paper-segpic2024_mse": ("SegPIC paper (ECCV 2024)", "C3"),
    "paper-moric2025_mse": ("MoRIC paper (NeurIPS 2025)", "#bcbd22"),
    "jpeg": ("JPEG (CompressAI)", "C1"),
    "webp": ("WebP (CompressAI)", "C2"),
}
MEASURED_COLOURS = {"segpic": "C3", "segpic-cuda": "C3", "jpeg": "C1", "webp": "C2",
                    "avif": "C4", "jxl": "C5", "heic": "C6"}
VTM, BPG = "vtm", "bpg_444_x265_ycbcr"
CODEC_KEYS = ("segpic", "jpeg", "webp", "avif", "jxl", "heic")
RESULT_FILES = ("segpic", "segpic-cuda", "jpeg", "webp", "avif", "jxl", "heic")


class BenchError(click.ClickException):
    """One line for the user, exit status 1, no traceback."""


# ------------------------------------------------------------------ metrics
def psnr_rgb(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR in dB over all 8-bit RGB samples (peak 255), capped at PSNR_CAP."""
    mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def ms_ssim_rgb(ref: np.ndarray, out: np.ndarray) -> float:
    """MS-SSIM over RGB with pytorch-msssim (data_range=255, float32, the settings
    CompressAI uses). NaN for images whose short side is at most 160 pixels: the
    five-scale 11x11 window does not fit them."""
    import torch
    from pytorch_msssim import ms_ssim

    if min(ref.shape[:2]) <= 160:
        return float("nan")

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None]

    with torch.no_grad():
        return float(ms_ssim(tensor(ref), tensor(out), data_range=255.0, size_average=True))


# ------------------------------------------------------------------ BD-rate
@dataclass
class BDResult:
    """BD-rate in percent (negative: the test codec needs fewer bits at equal
    PSNR) and the PSNR interval it was averaged over; value None means "n/a"."""

    value: float | None
    lo: float = float("nan")
    hi: float = float("nan")
    reason: str = ""


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float],
            rate_test: Sequence[float], psnr_test: Sequence[float],
            max_bpp: float | None = BD_MAX_BPP,
            min_overlap_db: float = BD_MIN_OVERLAP_DB) -> BDResult:
    """Bjontegaard delta rate (VCEG-M33): fit ln(rate) as a cubic polynomial of
    PSNR for each curve, integrate both over the common PSNR interval, and return
    exp(mean difference) - 1 in percent. Only points at or below `max_bpp` are
    fitted; no number (value None) when either curve has fewer than 4 points or
    the curves share less than `min_overlap_db` dB, rather than extrapolate."""
    curves = []
    for rates, psnrs in ((rate_anchor, psnr_anchor), (rate_test, psnr_test)):
        r = np.asarray(rates, dtype=np.float64)
        d = np.asarray(psnrs, dtype=np.float64)
        keep = np.isfinite(r) & np.isfinite(d) & (r > 0)
        if max_bpp is not None:
            keep &= r <= max_bpp
        r, d = r[keep], d[keep]
        if len(np.unique(d)) < 4:
            return BDResult(None, reason="fewer than 4 points")
        curves.append((np.log(r), d))
    lo = max(d.min() for _, d in curves)
    hi = min(d.max() for _, d in curves)
    if hi - lo < min_overlap_db:
        return BDResult(None, lo, hi, reason="PSNR ranges do not overlap enough")
    # centre PSNR before fitting: x**3 of raw dB values makes polyfit ill-conditioned
    centre = (lo + hi) / 2
    integrals = []
    for log_r, d in curves:
        poly = np.polyint(np.polyfit(d - centre, log_r, 3))
        integrals.append(np.polyval(poly, hi - centre) - np.polyval(poly, lo - centre))
    mean_diff = (integrals[1] - integrals[0]) / (hi - lo)
    return BDResult(float((math.exp(mean_diff) - 1.0) * 100.0), float(lo), float(hi))


# ------------------------------------------------------------------ codecs
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


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def make_jpeg(threads: int) -> BenchCodec:
    import PIL
    from PIL import features

    return BenchCodec(
        "jpeg", "JPEG",
        f"JPEG. Pillow {PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}), "
        "Pillow defaults (4:2:0, baseline, no optimize), as CompressAI",
        COMPRESSAI_QUALITIES, (10, 30, 50, 75), "1 (libjpeg-turbo is single-threaded)",
        _pillow_run("JPEG", lambda q: {"quality": int(q)}, "JPEG"))


def make_webp(threads: int) -> BenchCodec:
    import PIL
    from PIL import features

    return BenchCodec(
        "webp", "WebP",
        f"WebP. Pillow {PIL.__version__} (libwebp {features.version('webp')}), "
        "Pillow defaults (lossy, method 4), as CompressAI",
        COMPRESSAI_QUALITIES, (10, 30, 50, 75), "1 (libwebp lossy is single-threaded)",
        _pillow_run("WEBP", lambda q: {"quality": int(q)}, "WEBP"))


def make_avif(threads: int) -> BenchCodec | str:
    import PIL
    from PIL import features

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
        source = f"pillow-avif-plugin {_version('pillow-avif-plugin')}"
    # 4:4:4 because PSNR is measured on RGB (on six Kodak images it beat 4:2:0 by
    # 1% BD-rate); speed 6 is libavif's default
    return BenchCodec(
        "avif", "AVIF", f"AVIF. {source}, 4:4:4, speed 6",
        (5, 12, 20, 28, 36, 44, 52, 60, 68, 76), (10, 30, 50, 70),
        f"{threads} (libavif max_threads)",
        _pillow_run("AVIF", lambda q: {"quality": int(q), "subsampling": "4:4:4", "speed": 6,
                                       "max_threads": threads}, "AVIF"))


def make_jxl(threads: int) -> BenchCodec | str:
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
        f"JPEG XL. pillow-jxl-plugin {_version('pillow-jxl-plugin')} (libjxl), effort 7",
        (0, 10, 20, 30, 40, 50, 60, 70, 80, 85), (10, 40, 70, 85), f"{threads} (libjxl threads)",
        _pillow_run("JXL", lambda q: {"quality": int(q), "effort": 7, "num_threads": threads},
                    "JXL"))


def make_heic(threads: int) -> BenchCodec | str:
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
        f"HEIC. pillow-heif {_version('pillow-heif')}, libheif {info.get('libheif', '?')}, "
        f"{encoder}, 4:2:0, libheif's x265 defaults",
        (10, 15, 20, 25, 30, 35, 40, 45, 50, 55), (10, 25, 40, 50),
        f"{threads} (x265 pools, libde265 decode threads)" if x265 else str(threads),
        _pillow_run("HEIF", kwargs, "HEIF"))


def make_segpic(device: str, weights: Path | None, threads: int) -> BenchCodec:
    import inspect

    import torch

    from .segpic.codec import Codec

    try:
        codec = Codec.load(weights, model=None, device=device)
    except (ValueError, OSError) as exc:  # WeightsError, CodecError, unreadable files
        raise BenchError(f"segpic: {exc}") from None
    cuda = codec.device.type == "cuda"
    # time the real file path: encode without the side reconstruction when the
    # API can skip it (the CLI's `segpic encode` does)
    skip_rec = "reconstruct" in inspect.signature(codec.encode).parameters
    levels = tuple(float(q) for q in range(1, codec.num_qualities + 1))

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def run(pixels: np.ndarray, setting: float) -> Measurement:
        kwargs = {"reconstruct": False} if skip_rec else {}
        sync()
        t0 = time.perf_counter()
        res = codec.encode(pixels, quality=setting, **kwargs)
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


# ------------------------------------------------------------------ running
@dataclass
class RunConfig:
    src: Path
    out: Path
    quick: bool
    codecs: tuple[str, ...]
    device: str
    threads: int
    limit: int | None
    weights: Path | None
    anchors: Path | None
    command: str
    notes: list[str] = field(default_factory=list)


def list_images(src: Path) -> list[Path]:
    if not src.is_dir():
        raise BenchError(f"image folder {src} not found (give a folder of images as SRC)")
    images = sorted(p for p in src.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise BenchError(f"no images in {src} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def build_codecs(cfg: RunConfig) -> list[BenchCodec]:
    """The codecs asked for, in table order; codecs whose library is missing are
    dropped with a one-line note."""
    import torch

    codecs: list[BenchCodec] = []
    for key in cfg.codecs:
        if key == "segpic":
            devices = [cfg.device]
            if cfg.device == "auto":
                # CPU always (the reference numbers); CUDA as well when there is one
                devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            codecs += [make_segpic(d, cfg.weights, cfg.threads) for d in devices]
            continue
        made = {"jpeg": make_jpeg, "webp": make_webp, "avif": make_avif, "jxl": make_jxl,
                "heic": make_heic}[key](cfg.threads)
        if isinstance(made, str):
            cfg.notes.append(made)
            click.echo(f"segpic bench: note: {made}", err=True)
        else:
            codecs.append(made)
    if not codecs:
        raise BenchError("no codec left to measure")
    return codecs


def measure(cfg: RunConfig, codecs: list[BenchCodec], images: list[Path]) -> list[dict]:
    """Run every codec at every setting on every image; one record per run.
    Images are the outer loop so that a slow spell of a shared machine spreads
    over all codecs instead of landing on one."""
    from .image_io import load_image

    records: list[dict] = []
    for i, path in enumerate(images):
        try:
            pixels = load_image(path).pixels
        except ValueError as exc:  # ImageError: already "path: reason"
            raise BenchError(str(exc)) from None
        h, w = pixels.shape[:2]
        line = []
        for codec in codecs:
            settings = codec.quick_settings if cfg.quick else codec.settings
            if i == 0 and not cfg.quick:
                # warm-up, not recorded: first calls pay for allocation, kernel
                # selection and lazy library loading
                _run_one(codec, pixels, settings[0], path)
            t_codec = time.perf_counter()
            for setting in settings:
                m = _run_one(codec, pixels, setting, path)
                records.append({
                    "image": path.name, "codec": codec.key, "setting": _json_num(setting),
                    "width": w, "height": h, "bytes": m.nbytes,
                    "bpp": 8.0 * m.nbytes / (w * h),
                    "psnr-rgb": psnr_rgb(pixels, m.pixels),
                    "ms-ssim-rgb": ms_ssim_rgb(pixels, m.pixels),
                    "encoding_time": m.enc_s, "decoding_time": m.dec_s,
                })
            line.append(f"{codec.key} {time.perf_counter() - t_codec:.1f}s")
        click.echo(f"[{i + 1}/{len(images)}] {path.name}: {', '.join(line)}", err=True)
    return records


def _run_one(codec: BenchCodec, pixels: np.ndarray, setting: float, path: Path) -> Measurement:
    try:
        return codec.run(pixels, setting)
    except Exception as exc:  # noqa: BLE001 - any library failure becomes one line
        raise BenchError(f"{codec.name} failed on {path.name} at {codec.param} "
                         f"{_fmt_setting(setting)}: {type(exc).__name__}: {exc}") from None


def _fmt_setting(s: float) -> str:
    return str(int(s)) if float(s).is_integer() else f"{s:g}"


# ------------------------------------------------------------------ aggregation
def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def aggregate(records: list[dict], codec: BenchCodec) -> dict:
    """CompressAI's results format for one codec: per setting, the mean over
    images of bpp, PSNR (mean of per-image PSNR), MS-SSIM and the two times."""
    mine = [r for r in records if r["codec"] == codec.key]
    settings = sorted({r["setting"] for r in mine})
    results: dict[str, list] = {k: [] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb",
                                                "encoding_time", "decoding_time")}
    for s in settings:
        rows = [r for r in mine if r["setting"] == s]
        for k in results:
            results[k].append(_mean([r[k] for r in rows]))
    return {
        "name": codec.name,
        "description": codec.description,
        "settings": {"param": codec.param, "values": [_json_num(s) for s in settings]},
        "images": len({r["image"] for r in mine}),
        "results": results,
    }


def _json_num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def speed_stats(records: list[dict], key: str) -> dict[str, float]:
    """Medians over every (image, setting) run of the codec."""
    mine = [r for r in records if r["codec"] == key]
    mp = [r["width"] * r["height"] / 1e6 for r in mine]
    enc = [r["encoding_time"] for r in mine]
    dec = [r["decoding_time"] for r in mine]
    return {
        "encode_s": statistics.median(enc),
        "decode_s": statistics.median(dec),
        "encode_mp_s": statistics.median(m / max(t, 1e-9) for m, t in zip(mp, enc, strict=True)),
        "decode_mp_s": statistics.median(m / max(t, 1e-9) for m, t in zip(mp, dec, strict=True)),
    }


def load_anchors(folder: Path | None) -> dict[str, dict]:
    """Published curves, by file stem. Unreadable files are skipped: they are
    reference data, and the measured part of the run should still be written."""
    anchors: dict[str, dict] = {}
    if folder is None or not folder.is_dir():
        return anchors
    for f in sorted(folder.glob("*.json")):
        try:
            d = json.loads(f.read_text())
            r = d["results"]
            if len(r["bpp"]) == len(r["psnr-rgb"]) and r["bpp"]:
                anchors[f.stem] = d
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return anchors


def _curve(d: dict) -> tuple[list[float], list[float]]:
    r = d["results"]
    pts = [(b, p) for b, p in zip(r["bpp"], r["psnr-rgb"], strict=True)
           if b is not None and p is not None]
    return [b for b, _ in pts], [p for _, p in pts]


def _bd(anchor: dict, test: dict) -> BDResult:
    return bd_rate(*_curve(anchor), *_curve(test))


def harness_check(ours: dict, theirs: dict) -> dict[str, Any]:
    """How close our JPEG/WebP land on CompressAI's published curve: BD-rate of
    ours against theirs, the bpp and PSNR differences at the same quality setting,
    and the PSNR difference at equal bpp (their curve interpolated linearly in
    log-bpp, inside their range only)."""
    ob, op = _curve(ours)
    tb, tp = _curve(theirs)
    out: dict[str, Any] = {"bd_rate": _bd(theirs, ours).value}
    settings = ours.get("settings", {}).get("values", [])
    same_q = [(i, COMPRESSAI_QUALITIES.index(q)) for i, q in enumerate(settings)
              if q in COMPRESSAI_QUALITIES and len(tb) == len(COMPRESSAI_QUALITIES)]
    if same_q:
        dbpp = [100.0 * (ob[i] / tb[j] - 1.0) for i, j in same_q]
        dpsnr = [op[i] - tp[j] for i, j in same_q]
        out["same_quality"] = {
            "n": len(same_q),
            "bpp_diff_pct_mean": float(np.mean(dbpp)),
            "bpp_diff_pct_max_abs": float(np.max(np.abs(dbpp))),
            "psnr_diff_db_mean": float(np.mean(dpsnr)),
            "psnr_diff_db_max_abs": float(np.max(np.abs(dpsnr))),
        }
    order = np.argsort(tb)
    lt, pt = np.log(np.asarray(tb)[order]), np.asarray(tp)[order]
    diffs = [p - float(np.interp(math.log(b), lt, pt)) for b, p in zip(ob, op, strict=True)
             if lt[0] <= math.log(b) <= lt[-1]]
    if diffs:
        out["same_bpp"] = {"n": len(diffs), "psnr_diff_db_mean": float(np.mean(diffs)),
                           "psnr_diff_db_max_abs": float(np.max(np.abs(diffs)))}
    return out


# ------------------------------------------------------------------ report
def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def _sig(v: float, digits: int = 3) -> str:
    """Significant digits, not decimals: times run from 1 ms (JPEG) to seconds."""
    return f"{v:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def build_summary(cfg: RunConfig, codecs: list[BenchCodec], results: dict[str, dict],
                  records: list[dict], anchors: dict[str, dict], env: dict) -> dict:
    keys = [c.key for c in codecs]
    summary: dict[str, Any] = {"environment": env, "codecs": {}, "published": {},
                               "pairwise_bd_rate": {}, "harness_check": {}}
    vtm = anchors.get(VTM)
    for c in codecs:
        res = results[c.key]
        bd_vtm = _bd(vtm, res) if vtm else BDResult(None, reason="no VTM anchor")
        summary["codecs"][c.key] = {
            "name": c.name, "description": c.description, "threads": c.threads,
            "settings": res["settings"]["values"],
            "bpp": [min(res["results"]["bpp"]), max(res["results"]["bpp"])],
            "psnr-rgb": [min(res["results"]["psnr-rgb"]), max(res["results"]["psnr-rgb"])],
            "bd_rate_vs_vtm": bd_vtm.value,
            "bd_rate_vs_vtm_psnr_range": [bd_vtm.lo, bd_vtm.hi] if bd_vtm.value is not None
            else None,
            **speed_stats(records, c.key),
        }
    for stem, d in anchors.items():
        summary["published"][stem] = {
            "name": PLOTTED_ANCHORS.get(stem, (d.get("name", stem),))[0],
            "bd_rate_vs_vtm": _bd(vtm, d).value if vtm else None,
        }
    columns = ([s for s in (VTM, BPG) if s in anchors])
    for test in keys:
        row: dict[str, float | None] = {}
        for ref in columns:
            row[f"published:{ref}"] = _bd(anchors[ref], results[test]).value
        for ref in keys:
            row[ref] = 0.0 if ref == test else _bd(results[ref], results[test]).value
        summary["pairwise_bd_rate"][test] = row
    for key in ("jpeg", "webp"):
        if key in results and key in anchors:
            summary["harness_check"][key] = harness_check(results[key], anchors[key])
    return summary


def write_markdown(path: Path, cfg: RunConfig, codecs: list[BenchCodec], summary: dict) -> None:
    env = summary["environment"]
    n = env["images"]
    lines = [
        f"# segpic bench: {env['source_name']} ({n} image{'s' if n != 1 else ''})",
        "",
        f"Made by `{cfg.command}` on {env['date']}.",
        f"CPU: {env['cpu']} ({env['cpu_count']} cores), {cfg.threads} thread(s) given to "
        f"each codec that can use them; load average at start/end "
        f"{env['load_average_start']}/{env['load_average_end']}"
        + (f"; GPU: {env['gpu']}" if env.get("gpu") else "; no GPU") + ".",
        "",
        "bpp: 8 x the real file size / pixels. PSNR: 8-bit RGB, peak 255, the mean of "
        "per-image PSNR at each setting. BD-rate: bitrate change at equal PSNR (negative "
        f"is better), cubic fit of ln(bpp) over PSNR, points at or below {BD_MAX_BPP:g} bpp, "
        "over the PSNR range both curves cover; n/a where they share less than "
        f"{BD_MIN_OVERLAP_DB:g} dB. Times: medians over every image and setting, one "
        "image at a time, wall clock.",
        "",
        "![RD plot](rd.png)",
        "",
        "## Measured",
        "",
    ]
    header = ["codec", "BD-rate vs VTM", "over PSNR (dB)", "bpp range", "PSNR range (dB)",
              "settings",
              "threads", "encode s", "decode s", "encode MP/s", "decode MP/s"]
    rows = []
    for c in codecs:
        s = summary["codecs"][c.key]
        rows.append([
            c.name, _pct(s["bd_rate_vs_vtm"]),
            "-" if s["bd_rate_vs_vtm_psnr_range"] is None
            else "{:.1f}-{:.1f}".format(*s["bd_rate_vs_vtm_psnr_range"]),
            f"{s['bpp'][0]:.3f}-{s['bpp'][1]:.3f}",
            f"{s['psnr-rgb'][0]:.2f}-{s['psnr-rgb'][1]:.2f}",
            f"{c.param} {_fmt_setting(s['settings'][0])}-{_fmt_setting(s['settings'][-1])} "
            f"({len(s['settings'])})",
            s["threads"], _sig(s["encode_s"]), _sig(s["decode_s"]),
            _sig(s["encode_mp_s"], 3), _sig(s["decode_mp_s"], 3)])
    lines += _table(header, rows)
    lines += ["", "What each measured codec is:", ""]
    lines += [f"- **{c.name}**: {c.description}." for c in codecs]

    pw = summary["pairwise_bd_rate"]
    if pw:
        first = next(iter(pw.values()))
        cols = list(first)
        names = {c.key: c.name for c in codecs}

        def col_name(k: str) -> str:
            if k.startswith("published:"):
                stem = k.split(":", 1)[1]
                return f"{summary['published'].get(stem, {}).get('name', stem)} (published)"
            return names.get(k, k)

        lines += ["", "## BD-rate, each row against each column", "",
                  "Rate change of the row codec at equal PSNR against the column codec "
                  "(negative: the row codec needs fewer bits).", ""]
        lines += _table(["codec"] + [col_name(k) for k in cols],
                        [[names[r]] + ["-" if r == k else _pct(v[k]) for k in cols]
                         for r, v in pw.items()])

    hc = summary["harness_check"]
    if hc:
        lines += ["", "## Harness check: our JPEG and WebP against CompressAI's published", "",
                  "CompressAI's jpeg.json and webp.json were made with Pillow 7.1.2 at quality "
                  "5-95 on the 24 Kodak images; ours use the same settings and metric with the "
                  "Pillow installed here." + ("" if n == 24 else
                                               f" This run used {n} images, not the same set: "
                                               "the numbers below are only indicative."), ""]
        rows = []
        for key, h in hc.items():
            sq, sb = h.get("same_quality", {}), h.get("same_bpp", {})
            rows.append([
                {"jpeg": "JPEG", "webp": "WebP"}[key], _pct(h["bd_rate"]),
                f"{sq['bpp_diff_pct_mean']:+.2f}% (max {sq['bpp_diff_pct_max_abs']:.2f}%)"
                if sq else "n/a",
                f"{sq['psnr_diff_db_mean']:+.3f} (max {sq['psnr_diff_db_max_abs']:.3f})"
                if sq else "n/a",
                f"{sb['psnr_diff_db_mean']:+.3f} (max {sb['psnr_diff_db_max_abs']:.3f})"
                if sb else "n/a"])
        lines += _table(["codec", "BD-rate ours vs published", "bpp diff, same quality",
                         "PSNR diff (dB), same quality", "PSNR diff (dB), same bpp"], rows)

    pub = summary["published"]
    if pub:
        lines += ["", "## Published curves (not measured here)", "",
                  "From the anchors folder, drawn dashed on the plot; BD-rate computed the "
                  "same way.", ""]
        lines += _table(["curve", "file", "BD-rate vs VTM"],
                        [[d["name"], f"{stem}.json", _pct(d["bd_rate_vs_vtm"])]
                         for stem, d in pub.items()])

    lines += ["", "## Libraries", ""]
    lines += [f"- {k}: {v}" for k, v in env["versions"].items()]
    lines += [f"- MS-SSIM: {env['ms_ssim']}", f"- PSNR: {env['psnr']}"]
    if cfg.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in cfg.notes]
    path.write_text("\n".join(lines) + "\n")


def plot_rd(path: Path, codecs: list[BenchCodec], results: dict[str, dict],
            anchors: dict[str, dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    x_max = 1.6
    fig, ax = plt.subplots(figsize=(11, 7.5), dpi=120)
    visible: list[float] = []
    keys = [c.key for c in codecs]
    # segpic-cuda lies on the CPU curve; draw it only when it is the only segpic
    drawn = [c for c in codecs if not (c.key == "segpic-cuda" and "segpic" in keys)]
    for c in drawn:
        b, p = _curve(results[c.key])
        segpic = c.key.startswith("segpic")
        ax.plot(b, p, "-", marker="o", ms=5 if segpic else 4, lw=2.6 if segpic else 1.8,
                color=MEASURED_COLOURS.get(c.key, "C9"), label=f"{c.label or c.name} (measured)",
                zorder=3)
        visible += [v for bb, v in zip(b, p, strict=True) if bb <= x_max]
    for stem, (name, colour) in PLOTTED_ANCHORS.items():
        if stem not in anchors:
            continue
        b, p = _curve(anchors[stem])
        ax.plot(b, p, "--", marker=".", ms=4, lw=1.3, color=colour, alpha=0.85,
                label=f"{name} (published)", zorder=2)
        visible += [v for bb, v in zip(b, p, strict=True) if bb <= x_max]
    if visible:
        ax.set_ylim(math.floor(min(visible)) - 0.5, math.ceil(max(visible)) + 0.5)
    ax.set_xlim(0, x_max)
    ax.set_xlabel("bits per pixel (real file size)")
    ax.set_ylabel("PSNR-RGB (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def environment(cfg: RunConfig, images: list[Path], load_start: str) -> dict[str, Any]:
    import PIL
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "Pillow": PIL.__version__,
        "pytorch-msssim": _version("pytorch-msssim"),
        "matplotlib": _version("matplotlib"),
        "pillow-heif": _version("pillow-heif"),
        "pillow-jxl-plugin": _version("pillow-jxl-plugin"),
        "segpic": _version("segpic"),
    }
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": cfg.command,
        "source": _display_path(cfg.src),
        "source_name": cfg.src.resolve().name,
        "images": len(images),
        "image_names": [p.name for p in images],
        "quick": cfg.quick,
        "threads": cfg.threads,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": load_start,
        "load_average_end": _loadavg(),
        "platform": platform.platform(),
        "versions": versions,
        "psnr": f"10 log10(255^2 / MSE) over all RGB samples (8-bit), capped at {PSNR_CAP:g} dB",
        "ms_ssim": f"pytorch-msssim {_version('pytorch-msssim')}, ms_ssim(data_range=255), "
                   "RGB float32, default 11x11 Gaussian window and 5 scales",
        "bd_rate": f"cubic fit of ln(bpp) over PSNR (VCEG-M33), points <= {BD_MAX_BPP:g} bpp, "
                   f"common PSNR range, n/a below {BD_MIN_OVERLAP_DB:g} dB of overlap",
    }


def _loadavg() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def _display_path(p: Path) -> str:
    """Repository-relative where possible: committed results must not carry the
    paths of the machine that made them."""
    full = p.resolve()
    for base, prefix in ((REPO, ""), (REPO.parent, "../")):
        if full.is_relative_to(base):
            return prefix + str(full.relative_to(base)) if full != base else (prefix or "./")
    return str(full)


def _json_clean(x: Any) -> Any:
    """NaN/inf are not JSON: write null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_clean(v) for v in x]
    return x


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_json_clean(obj), indent=2) + "\n")


def run_bench(cfg: RunConfig) -> dict:
    """Measure, then write <out>/{<codec>.json, per_image.json, summary.json,
    results.md, rd.png}. Returns the summary."""
    images = list_images(cfg.src)
    try:
        import matplotlib  # noqa: F401
        import pytorch_msssim  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"{exc.name} is not installed: pip install -e '.[bench]'") from None
    import torch

    if cfg.limit is not None:
        images = images[: cfg.limit]
    torch.set_num_threads(cfg.threads)
    load_start = _loadavg()
    try:
        if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
            msg = (f"the machine is busy (load {load_start}): timings will be noisy"
                   + ("" if os.environ.get("OMP_WAIT_POLICY") else
                      "; on a shared CPU set OMP_WAIT_POLICY=PASSIVE, torch threads that "
                      "spin-wait against another job can run several times slower"))
            cfg.notes.append(msg)
            click.echo(f"segpic bench: note: {msg}", err=True)
    except OSError:
        pass
    anchors = load_anchors(cfg.anchors)
    if cfg.anchors is not None and not anchors:
        msg = f"no published curves in {_display_path(cfg.anchors)}: no BD-rate against VTM"
        cfg.notes.append(msg)
        click.echo(f"segpic bench: note: {msg}", err=True)
    codecs = build_codecs(cfg)
    click.echo(f"segpic bench: {len(images)} image(s), {', '.join(c.key for c in codecs)}, "
               f"{cfg.threads} thread(s) -> {_display_path(cfg.out)}", err=True)
    records = measure(cfg, codecs, images)
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create {cfg.out}: {exc.strerror or exc}") from None
    results = {c.key: aggregate(records, c) for c in codecs}
    if cfg.quick:
        cfg.notes.append(f"--quick: {len(images)} image(s) and 2-4 settings per codec; "
                         "no warm-up run; a smoke test, not a measurement")
    env = environment(cfg, images, load_start)
    summary = build_summary(cfg, codecs, results, records, anchors, env)
    summary["notes"] = cfg.notes
    # a folder holds one run: drop codec files an earlier run left behind
    for stem in RESULT_FILES:
        stale = cfg.out / f"{stem}.json"
        if stem not in results and stale.exists():
            stale.unlink()
    for key, res in results.items():
        _write_json(cfg.out / f"{key}.json", res)
    _write_json(cfg.out / "per_image.json", {"environment": env, "records": records})
    _write_json(cfg.out / "summary.json", summary)
    title = (f"{env['source_name']} ({len(images)} images): RGB PSNR vs bpp; "
             "solid: measured here, dashed: published")
    plot_rd(cfg.out / "rd.png", codecs, results, anchors, title)
    write_markdown(cfg.out / "results.md", cfg, codecs, summary)
    return summary


# ------------------------------------------------------------------ command
def _default_out(quick: bool) -> Path:
    sub = Path("bench") / "results" / ("quick" if quick else "kodak")
    # inside a source checkout: the committed results folder; elsewhere: ./bench/...
    return REPO / sub if (REPO / "pyproject.toml").is_file() else Path.cwd() / sub


def _parse_codecs(value: str | None) -> tuple[str, ...]:
    if not value:
        return CODEC_KEYS
    asked = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [v for v in asked if v not in CODEC_KEYS]
    if unknown or not asked:
        raise BenchError(f"unknown codec(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {','.join(CODEC_KEYS)}")
    return tuple(k for k in CODEC_KEYS if k in asked)


def _available_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _command_line(src: Path | None, out: Path | None, quick: bool, codecs: str | None,
                  device: str, threads: int, limit: int | None, weights: Path | None,
                  anchors: str | None) -> str:
    """The command that reproduces this run, written into the results."""
    parts = ["segpic", "bench"]
    if os.environ.get("OMP_WAIT_POLICY"):  # changes CPU timings a lot on a shared machine
        parts.insert(0, f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    if src is not None:
        parts.append(_display_path(src))
    if quick:
        parts.append("--quick")
    if out is not None:
        parts += ["--out", _display_path(out)]
    if codecs:
        parts += ["--codecs", codecs]
    if device != "auto":
        parts += ["--device", device]
    parts += ["--threads", str(threads)]
    if limit is not None:
        parts += ["--limit", str(limit)]
    if weights is not None:
        parts += ["--weights", _display_path(weights)]
    if anchors is not None:
        parts += ["--anchors", anchors if anchors == "none" else _display_path(Path(anchors))]
    return " ".join(parts)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: bench/results/kodak; with --quick "
                   "bench/results/quick).")
@click.option("--quick", is_flag=True,
              help=f"Smoke test: {QUICK_IMAGES} images, 2-4 settings per codec.")
@click.option("--codecs", default=None, metavar="LIST",
              help=f"Comma list to measure (default: all of {','.join(CODEC_KEYS)}).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True,
              help="segpic's device; auto measures the CPU and, when present, CUDA too.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch and the codecs that can use several "
                   "(default: every core available).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N images (sorted by name).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="segpic weights folder (default: the shipped weights).")
@click.option("--anchors", default=None, metavar="DIR|none",
              help="Published curves (CompressAI JSON) to draw and compare against "
                   "(default: ../shared/anchors/kodak when SRC is Kodak; 'none' for none).")
def bench(src: Path | None, out: Path | None, quick: bool, codecs: str | None, device: str,
          threads: int | None, limit: int | None, weights: Path | None,
          anchors: str | None) -> None:
    """Rate-distortion and speed of segpic against JPEG, WebP, AVIF, JPEG XL and HEIC.

    SRC is a folder of images (default: Kodak in ../shared/data/kodak). Writes
    per-codec JSON in CompressAI's format, per-image JSON, a markdown table with
    BD-rates (results.md) and an RD plot (rd.png).
    """
    n_threads = threads or _available_threads()
    folder = src if src is not None else DEFAULT_SRC
    if anchors == "none":
        anchor_dir = None
    elif anchors is not None:
        anchor_dir = Path(anchors)
        if not anchor_dir.is_dir():
            raise BenchError(f"anchors folder {anchor_dir} not found")
    elif src is None or folder.resolve().name.lower() == "kodak":
        # published numbers are Kodak numbers: never draw them beside another set
        anchor_dir = DEFAULT_ANCHORS
    else:
        anchor_dir = None
    cfg = RunConfig(
        src=folder,
        out=out if out is not None else _default_out(quick),
        quick=quick,
        codecs=_parse_codecs(codecs),
        device=device,
        threads=n_threads,
        limit=limit if limit is not None else (QUICK_IMAGES if quick else None),
        weights=weights,
        anchors=anchor_dir,
        command=_command_line(src, out, quick, codecs, device, n_threads, limit, weights,
                              anchors),
    )
    if src is None and not folder.is_dir():
        raise BenchError(f"Kodak not found at {folder.resolve()}; give a folder of images "
                         "as SRC")
    if anchor_dir is None and anchors is None:
        cfg.notes.append("published Kodak curves not drawn: SRC is not Kodak "
                         "(--anchors DIR to use them anyway)")
    summary = run_bench(cfg)
    out_dir = _display_path(cfg.out)
    for key, s in summary["codecs"].items():
        click.echo(f"  {key:12s} BD-rate vs VTM {_pct(s['bd_rate_vs_vtm']):>8s}  "
                   f"bpp {s['bpp'][0]:.3f}-{s['bpp'][1]:.3f}  "
                   f"encode {_sig(s['encode_s'])}s decode {_sig(s['decode_s'])}s")
    click.echo(f"wrote {out_dir}/results.md, rd.png, summary.json, per_image.json")


if __name__ == "__main__":
    bench(prog_name="segpic bench")

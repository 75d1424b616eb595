"""What a run writes besides the per-codec curves: the environment it ran in, the
summary (BD-rates against VTM and pairwise, speed, the harness check) as JSON, and
the same as markdown tables (results.md)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..quality_metrics import PSNR_CAP
from .anchors import BPG, HARNESS_CHECKED, PLOTTED_ANCHORS, VTM, harness_check
from .bd_rate import BD_MAX_BPP, BD_MIN_OVERLAP_DB, BDResult, bd
from .codecs import BenchCodec
from .common import display_path, fmt_setting, loadavg, version

if TYPE_CHECKING:
    from .config import RunConfig


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
        "pytorch-msssim": version("pytorch-msssim"),
        "matplotlib": version("matplotlib"),
        "pillow-heif": version("pillow-heif"),
        "pillow-jxl-plugin": version("pillow-jxl-plugin"),
        "segpic": version("segpic"),
    }
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": cfg.command,
        "source": display_path(cfg.src),
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
        "load_average_end": loadavg(),
        "platform": platform.platform(),
        "versions": versions,
        "psnr": f"10 log10(255^2 / MSE) over all RGB samples (8-bit), capped at {PSNR_CAP:g} dB",
        "ms_ssim": f"pytorch-msssim {version('pytorch-msssim')}, ms_ssim(data_range=255), "
                   "RGB float32, default 11x11 Gaussian window and 5 scales",
        "bd_rate": f"cubic fit of ln(bpp) over PSNR (VCEG-M33), points <= {BD_MAX_BPP:g} bpp, "
                   f"common PSNR range, n/a below {BD_MIN_OVERLAP_DB:g} dB of overlap",
    }


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


# ------------------------------------------------------------------ JSON
def _json_clean(x: Any) -> Any:
    """NaN/inf are not JSON: write null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_clean(v) for v in x]
    return x


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_json_clean(obj), indent=2) + "\n")


def build_summary(cfg: RunConfig, codecs: list[BenchCodec], results: dict[str, dict],
                  records: list[dict], anchors: dict[str, dict], env: dict) -> dict:
    keys = [c.key for c in codecs]
    summary: dict[str, Any] = {"environment": env, "codecs": {}, "published": {},
                               "pairwise_bd_rate": {}, "harness_check": {}}
    vtm = anchors.get(VTM)
    for c in codecs:
        res = results[c.key]
        bd_vtm = bd(vtm, res) if vtm else BDResult(None, reason="no VTM anchor")
        summary["codecs"][c.key] = {
            "name": c.name, "description": c.description, "threads": c.threads,
            **({"steps": c.steps} if c.steps is not None else {}),
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
            "bd_rate_vs_vtm": bd(vtm, d).value if vtm else None,
        }
    columns = [s for s in (VTM, BPG) if s in anchors]
    columns += [s for s in anchors if s.endswith("@images")]
    for test in keys:
        row: dict[str, float | None] = {}
        for ref in columns:
            row[f"published:{ref}"] = bd(anchors[ref], results[test]).value
        for ref in keys:
            row[ref] = 0.0 if ref == test else bd(results[ref], results[test]).value
        summary["pairwise_bd_rate"][test] = row
    for key in HARNESS_CHECKED:
        if key in results and key in anchors:
            summary["harness_check"][key] = harness_check(results[key], anchors[key])
    return summary


# ------------------------------------------------------------------ markdown
def _anchor_file(stem: str) -> str:
    """Where a published curve comes from: a JSON file, or a per-image table
    averaged over the run's images ("<stem>@images")."""
    if stem.endswith("@images"):
        return f"per_image/{stem.removesuffix('@images')}.tsv, averaged over these images"
    return f"{stem}.json"


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def sig(v: float, digits: int = 3) -> str:
    """Significant digits, not decimals: times run from 1 ms (JPEG) to seconds."""
    return f"{v:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


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
            c.name, pct(s["bd_rate_vs_vtm"]),
            "-" if s["bd_rate_vs_vtm_psnr_range"] is None
            else "{:.1f}-{:.1f}".format(*s["bd_rate_vs_vtm_psnr_range"]),
            f"{s['bpp'][0]:.3f}-{s['bpp'][1]:.3f}",
            f"{s['psnr-rgb'][0]:.2f}-{s['psnr-rgb'][1]:.2f}",
            f"{c.param} {fmt_setting(s['settings'][0])}-{fmt_setting(s['settings'][-1])} "
            f"({len(s['settings'])})",
            s["threads"], sig(s["encode_s"]), sig(s["decode_s"]),
            sig(s["encode_mp_s"], 3), sig(s["decode_mp_s"], 3)])
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
                        [[names[r]] + ["-" if r == k else pct(v[k]) for k in cols]
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
                HARNESS_CHECKED[key], pct(h["bd_rate"]),
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
                        [[d["name"], _anchor_file(stem), pct(d["bd_rate_vs_vtm"])]
                         for stem, d in pub.items()])

    lines += ["", "## Libraries", ""]
    lines += [f"- {k}: {v}" for k, v in env["versions"].items()]
    lines += [f"- MS-SSIM: {env['ms_ssim']}", f"- PSNR: {env['psnr']}"]
    if cfg.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in cfg.notes]
    path.write_text("\n".join(lines) + "\n")

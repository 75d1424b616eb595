"""The published curves (CompressAI-format JSON in ../shared/anchors/kodak): loading
them, which are drawn and how, and the harness check of our JPEG and WebP against
CompressAI's."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import shared_data
from .bd_rate import bd, curve
from .codecs import COMPRESSAI_QUALITIES

# Published curves drawn on the plot (file stems in the anchors folder), in order,
# with their short names and preferred colours (plot.curve_styles gives a curve
# another colour when a measured curve already has this one).
PLOTTED_ANCHORS: dict[str, tuple[str, str]] = {
    "vtm": ("VTM", "#000000"),
    "bpg_444_x265_ycbcr": ("BPG 444 x265", "#808080"),
    "compressai-bmshj2018-hyperprior_mse_cpu": ("bmshj2018-hyperprior (CompressAI)", "#9ecae1"),
    "compressai-mbt2018-mean_mse_cpu": ("mbt2018-mean (CompressAI)", "#4292c6"),
    "compressai-cheng2020-anchor_mse_cpu": ("cheng2020-anchor (CompressAI)", "#2171b5"),
    "compressai-cheng2020-attn_mse_cpu": ("cheng2020-attn (CompressAI)", "#08306b"),
    "paper-segpic2024_mse": ("SegPIC paper (ECCV 2024)", "#ff9896"),
    "paper-moric2025_mse": ("MoRIC paper (NeurIPS 2025)", "#bcbd22"),
    "coolchic-v50@images": ("Cool-Chic 5.0, same images", "#17becf"),
    "coolchic-v42@images": ("Cool-Chic 4.2, same images", "#9edae5"),
    "jpeg": ("JPEG (CompressAI)", "#ffbb78"),
    "webp": ("WebP (CompressAI)", "#98df8a"),
}
VTM, BPG = "vtm", "bpg_444_x265_ycbcr"
# Published per-image curves (per_image/<stem>.tsv: image, lambda, bpp, psnr_rgb),
# averaged over the images of a run that chose its images: "<stem>@images".
PER_IMAGE_NAMES = {"coolchic-v50": "Cool-Chic 5.0", "coolchic-v42": "Cool-Chic 4.2"}
# Our codecs that CompressAI published with the same library and settings.
HARNESS_CHECKED = {"jpeg": "JPEG", "webp": "WebP"}


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


def harness_check(ours: dict, theirs: dict) -> dict[str, Any]:
    """How close our JPEG/WebP land on CompressAI's published curve: BD-rate of
    ours against theirs, the bpp and PSNR differences at the same quality setting,
    and the PSNR difference at equal bpp (their curve interpolated linearly in
    log-bpp, inside their range only)."""
    ob, op = curve(ours)
    tb, tp = curve(theirs)
    out: dict[str, Any] = {"bd_rate": bd(theirs, ours).value}
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


def per_image_anchors(folder: Path | None, stems: list[str]) -> dict[str, dict]:
    """Published per-image curves averaged over exactly these images, one point per
    lambda (mean bpp, mean PSNR, as CompressAI averages); a file that lacks one of
    the images, or is unreadable, gives no curve."""
    out: dict[str, dict] = {}
    if folder is None or not (folder / "per_image").is_dir() or not stems:
        return out
    for f in sorted((folder / "per_image").glob("*.tsv")):
        try:
            rows = [line.split("\t") for line in f.read_text().splitlines()[1:] if line]
            points: dict[float, dict[str, tuple[float, float]]] = {}
            for image, lam, bpp, psnr in rows:
                points.setdefault(float(lam), {})[image] = (float(bpp), float(psnr))
        except (OSError, ValueError):
            continue
        lams = sorted((lam for lam, per in points.items() if all(s in per for s in stems)),
                      reverse=True)
        if len(lams) < 2:
            continue
        name = PER_IMAGE_NAMES.get(f.stem, f.stem)
        out[f"{f.stem}@images"] = {
            "name": f"{name} ({len(stems)} images: {', '.join(stems)})",
            "description": f"published per-image results ({f.name}), averaged over the "
                           "images of this run",
            "results": {"bpp": [float(np.mean([points[lam][s][0] for s in stems]))
                                for lam in lams],
                        "psnr-rgb": [float(np.mean([points[lam][s][1] for s in stems]))
                                     for lam in lams]},
        }
    return out


# the published per-image curve that per-image points are set against
PER_IMAGE_ANCHOR = "coolchic-v50"


def per_image_anchor_file(option: str | None) -> Path | None:
    """The per-image anchor file an `--anchor` option names: "none" for none, a
    path, or (None) Cool-Chic 5.0's in the shared data when it is there."""
    if option == "none":
        return None
    if option is not None:
        return Path(option)
    folder = shared_data.anchors_dir(required=False)
    return None if folder is None else folder / "per_image" / f"{PER_IMAGE_ANCHOR}.tsv"

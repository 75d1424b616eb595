"""`segpic bench`: the BD-rate implementation against published numbers and the
bjontegaard package, the one-line errors, and the --quick run that CI makes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from segpic_codec.bench import BD_MAX_BPP, bd_rate, bench, psnr_rgb

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"
ANCHORS = SHARED / "anchors" / "kodak"
SHIPPED = REPO / "weights" / "small" / "manifest.json"

needs_anchors = pytest.mark.skipif(not (ANCHORS / "vtm.json").is_file(),
                                   reason=f"published anchors not found at {ANCHORS}")


def _anchor(stem: str) -> tuple[list[float], list[float]]:
    r = json.loads((ANCHORS / f"{stem}.json").read_text())["results"]
    return r["bpp"], r["psnr-rgb"]


# ------------------------------------------------------------------ BD-rate
def test_bd_rate_of_a_scaled_curve_is_the_scale():
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    psnr = [28.0, 30.4, 33.1, 35.5, 38.2]
    smaller = bd_rate(rates, psnr, [0.8 * r for r in rates], psnr)
    assert smaller.value == pytest.approx(-20.0, abs=1e-6)
    larger = bd_rate(rates, psnr, [1.25 * r for r in rates], psnr)
    assert larger.value == pytest.approx(25.0, abs=1e-6)
    assert bd_rate(rates, psnr, rates, psnr).value == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_is_na_rather_than_extrapolated():
    rates = [0.1, 0.2, 0.4, 0.8]
    low = [26.0, 27.0, 28.0, 29.0]
    high = [35.0, 36.0, 37.0, 38.0]
    result = bd_rate(rates, low, rates, high)
    assert result.value is None and "overlap" in result.reason
    assert bd_rate(rates[:3], low[:3], rates, low).value is None  # a cubic needs 4 points
    # only points at or below BD_MAX_BPP count
    assert bd_rate([r * 10 for r in rates], low, rates, low).value is None
    assert BD_MAX_BPP == 2.0


@needs_anchors
@pytest.mark.parametrize("stem, expected, tol", [
    ("paper-segpic2024_mse", -9.9, 0.3),   # the anchors README's figures
    ("paper-moric2025_mse", 0.0, 1.0),
    ("bpg_444_x265_ycbcr", 27.0, 1.0),
    ("webp", 86.0, 1.0),
])
def test_bd_rate_reproduces_the_anchor_readme(stem, expected, tol):
    assert bd_rate(*_anchor("vtm"), *_anchor(stem)).value == pytest.approx(expected, abs=tol)


@needs_anchors
@pytest.mark.parametrize("stem", [
    "paper-segpic2024_mse", "paper-moric2025_mse", "bpg_444_x265_ycbcr", "webp", "jpeg", "hm",
    "av1", "compressai-mbt2018-mean_mse_cpu", "compressai-cheng2020-anchor_mse_cpu",
    "paper-elic2022_mse",
])
def test_bd_rate_agrees_with_the_bjontegaard_package(stem):
    """The package has no cubic polynomial fit, only piecewise (pchip) fits: on
    the same points (<= 2 bpp) the two agree within half a percentage point."""
    bjontegaard = pytest.importorskip("bjontegaard")

    def window(stem):
        b, p = (np.asarray(v) for v in _anchor(stem))
        keep = b <= BD_MAX_BPP
        return b[keep], p[keep]

    (rb, rp), (tb, tp) = window("vtm"), window(stem)
    theirs = bjontegaard.bd_rate(rb, rp, tb, tp, method="pchip",
                                 require_matching_points=False, min_overlap=0)
    assert bd_rate(rb, rp, tb, tp).value == pytest.approx(theirs, abs=0.5)


def test_psnr_rgb():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # MSE = 100 / 48
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 * 48 / 100))
    assert psnr_rgb(a, a) == 100.0


# ------------------------------------------------------------------ errors
def test_missing_folder_is_one_line_error(tmp_path):
    result = CliRunner().invoke(bench, [str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "not found" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_default_kodak_is_one_line_error(monkeypatch, tmp_path):
    from segpic_codec import bench as bench_module

    monkeypatch.setattr(bench_module, "DEFAULT_SRC", tmp_path / "kodak")
    result = CliRunner().invoke(bench, ["--out", str(tmp_path / "o"), "--codecs", "jpeg"])
    assert result.exit_code != 0
    assert "Kodak not found at" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_codec_is_one_line_error(tmp_path):
    result = CliRunner().invoke(bench, [str(tmp_path), "--codecs", "jpeg,bpg"])
    assert result.exit_code != 0
    assert "unknown codec(s) bpg" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_empty_folder_is_one_line_error(tmp_path):
    result = CliRunner().invoke(bench, [str(tmp_path), "--codecs", "jpeg"])
    assert result.exit_code != 0
    assert "no images" in result.output


# ------------------------------------------------------------------ --quick
@pytest.mark.skipif(not KODAK.is_dir(), reason=f"Kodak images not found at {KODAK}")
@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"shipped weights not found at {SHIPPED}")
def test_quick_run(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pytorch_msssim")
    import torch

    out = tmp_path / "quick"
    threads = torch.get_num_threads()
    try:
        # one thread: a second spinning OpenMP thread can be several times slower
        # on a busy CI machine
        result = CliRunner().invoke(bench, [str(KODAK), "--quick", "--out", str(out),
                                            "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    for name in ("results.md", "rd.png", "summary.json", "per_image.json", "segpic.json",
                 "jpeg.json", "webp.json"):
        assert (out / name).is_file(), name
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((out / "summary.json").read_text())
    assert summary["environment"]["images"] == 2
    assert summary["environment"]["threads"] == 1
    measured = list(summary["codecs"])
    assert measured[:3] == ["segpic", "jpeg", "webp"]
    for key in measured:
        d = json.loads((out / f"{key}.json").read_text())
        assert set(d) >= {"name", "description", "results"}
        r = d["results"]
        assert set(r) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}
        n = len(d["settings"]["values"])
        assert n >= 2 and all(len(v) == n for v in r.values())
        assert d["settings"]["values"] == sorted(d["settings"]["values"])
        assert all(np.diff(r["bpp"]) > 0), (key, r["bpp"])
        assert all(math.isfinite(p) and 15 < p < 60 for p in r["psnr-rgb"]), key
        assert all(0 < s <= 1 for s in r["ms-ssim-rgb"]), key
        assert all(t > 0 for t in r["encoding_time"] + r["decoding_time"]), key
        speed = summary["codecs"][key]
        assert speed["encode_s"] > 0 and speed["decode_mp_s"] > 0

    per_image = json.loads((out / "per_image.json").read_text())["records"]
    assert {r["image"] for r in per_image} == {"kodim01.png", "kodim02.png"}
    spic = [r for r in per_image if r["codec"] == "segpic"]
    assert len(spic) == 4 and all(r["bpp"] == 8 * r["bytes"] / (768 * 512) for r in spic)

    # four JPEG settings below 2 bpp: a BD-rate against VTM exists, and it is bad
    if (ANCHORS / "vtm.json").is_file():
        assert summary["codecs"]["jpeg"]["bd_rate_vs_vtm"] > 50
        assert "jpeg" in summary["harness_check"]
    md = (out / "results.md").read_text()
    assert "BD-rate vs VTM" in md and "segpic bench" in md and "--quick" in md


def test_codec_without_its_library_is_skipped_with_a_note(monkeypatch, tmp_path):
    from segpic_codec import bench as bench_module

    monkeypatch.setattr(bench_module, "make_jxl",
                        lambda threads: "JPEG XL skipped: pillow-jxl-plugin is not installed")
    cfg = bench_module.RunConfig(
        src=tmp_path, out=tmp_path, quick=True, codecs=("jpeg", "jxl"), device="cpu",
        threads=1, limit=None, weights=None, anchors=None, command="segpic bench")
    codecs = bench_module.build_codecs(cfg)
    assert [c.key for c in codecs] == ["jpeg"]
    assert cfg.notes == ["JPEG XL skipped: pillow-jxl-plugin is not installed"]

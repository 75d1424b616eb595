"""`segpic bench`: the BD-rate implementation against published numbers and the
bjontegaard package, the one-line errors, and the --quick run that CI makes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, SHARED  # $SEGPIC_SHARED, default ../shared

from segpic_codec.bench import bench
from segpic_codec.bench.bd_rate import BD_MAX_BPP, bd_rate, rate_at_psnr
from segpic_codec.quality_metrics import PSNR_CAP, psnr_from_mse, psnr_rgb

KODAK = SHARED / "data" / "kodak"
ANCHORS = SHARED / "anchors" / "kodak"
SHIPPED = REPO / "weights" / "small" / "manifest.json"
EXAMPLE_PNG = REPO / "examples" / "parrots.png"

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


def test_rate_at_psnr_reads_the_fit_that_bd_rate_integrates():
    psnr = [26.0, 27.0, 28.5, 30.0, 31.0]
    cubic = [0.1 * math.exp(0.4 * (d - 26) + 0.01 * (d - 26) ** 3) for d in psnr]
    assert rate_at_psnr(cubic, psnr, 29.2) == pytest.approx(
        0.1 * math.exp(0.4 * 3.2 + 0.01 * 3.2**3), rel=1e-9)
    smooth = [0.1 * 1.5 ** ((d - 26.0) ** 1.1) for d in psnr]  # not a cubic
    for d in (26.4, 29.2):
        assert rate_at_psnr(smooth, psnr, d) == pytest.approx(0.1 * 1.5 ** ((d - 26) ** 1.1),
                                                              rel=0.01)
    assert rate_at_psnr(smooth, psnr, 25.9) is None  # no extrapolation
    assert rate_at_psnr(smooth[:3], psnr[:3], 27.0) is None  # a cubic needs 4 points
    assert rate_at_psnr([r * 10 for r in smooth], psnr, 27.0) is None  # above BD_MAX_BPP


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


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 10  # MSE = 100 / 48
    assert psnr_rgb(a, b) == pytest.approx(10 * math.log10(255**2 * 48 / 100))
    assert psnr_rgb(a, a) == PSNR_CAP == 100.0  # identical images: the cap, not inf
    assert psnr_rgb(a.astype(np.float64), a) == PSNR_CAP
    assert psnr_from_mse(100 / 48) == pytest.approx(10 * math.log10(255**2 * 48 / 100))
    assert psnr_from_mse(1e-3, peak=1.0) == pytest.approx(30.0)
    assert psnr_from_mse(0.0) == psnr_from_mse(1e-30) == PSNR_CAP
    with pytest.raises(ValueError, match="shapes"):
        psnr_rgb(a, a[:2])


# ------------------------------------------------------------------ errors
def test_missing_folder_is_one_line_error(tmp_path):
    result = CliRunner().invoke(bench, ["rd", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "not found" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_default_kodak_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGPIC_SHARED", str(tmp_path))  # a shared folder without Kodak
    result = CliRunner().invoke(bench, ["rd", "--out", str(tmp_path / "o"), "--codecs", "jpeg"])
    assert result.exit_code != 0
    assert "Kodak not found at" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_codec_is_one_line_error(tmp_path):
    result = CliRunner().invoke(bench, ["rd", str(tmp_path), "--codecs", "jpeg,bpg"])
    assert result.exit_code != 0
    assert "unknown codec(s) bpg" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_shared_folder_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGPIC_SHARED", str(tmp_path / "nope"))
    result = CliRunner().invoke(bench, ["rd", "--out", str(tmp_path / "o"), "--codecs", "jpeg"])
    assert result.exit_code != 0
    assert "SEGPIC_SHARED" in result.output and "not found" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_empty_folder_is_one_line_error(tmp_path):
    # the form without a subcommand runs `rd`
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
        result = CliRunner().invoke(bench, ["rd", str(KODAK), "--quick", "--out", str(out),
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
    from segpic_codec.bench import codecs as bench_codecs
    from segpic_codec.bench.config import RunConfig

    monkeypatch.setitem(bench_codecs.CODECS, "jxl",
                        lambda cfg: "JPEG XL skipped: pillow-jxl-plugin is not installed")
    cfg = RunConfig(
        src=tmp_path, out=tmp_path, quick=True, codecs=("jpeg", "jxl"), device="cpu",
        threads=1, limit=None, weights=None, anchors=None, command="segpic bench")
    codecs = bench_codecs.build_codecs(cfg)
    assert [c.key for c in codecs] == ["jpeg"]
    assert cfg.notes == ["JPEG XL skipped: pillow-jxl-plugin is not installed"]


# ------------------------------------------------------------------ --images, --steps
def _image_folder(folder: Path, names=("a", "b", "c"), size=48) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            folder / f"{name}.png")
    return folder


def _fake_slow_codec(calls: list):
    """A slow codec that takes a step budget, as an overfitted codec would: more
    steps, a few more bytes; deterministic, and instant."""
    from segpic_codec.bench.codecs import BenchCodec, Measurement, per_step_budget, slow

    @slow
    def make_fake(cfg):
        calls.append(cfg)

        def one(steps):
            def run(pixels, setting):
                q = 2 ** (6 - int(setting))  # coarser at lower settings
                out = (pixels // q * q).astype(np.uint8)
                return Measurement(int(40 * setting + steps // 100), out, steps / 1e4, 0.01)

            return BenchCodec("fake", "Fake", f"a fake codec, {steps} steps",
                              (1.0, 2.0, 3.0, 4.0), (1.0, 4.0), "1", run)

        return per_step_budget(cfg, one, default=500)

    return make_fake


def test_one_image_lister(tmp_path):
    """image_io.list_images, which the bench and training sets use: the image
    suffixes in any case, sorted; hidden files, folders and other files left out."""
    from segpic_codec.image_io import IMAGE_SUFFIXES, list_images

    names = ["b.PNG", "a.ppm", "c.jpeg", "d.tif", ".hidden.png", "._e.jpg", "notes.txt",
             "f.spic"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.ppm", "b.PNG", "c.jpeg", "d.tif"]
    assert {".ppm", ".png", ".jpg", ".webp", ".tiff"} <= IMAGE_SUFFIXES


def test_images_picks_the_named_images(tmp_path):
    from segpic_codec.bench.runner import select_images, source_images

    src = _image_folder(tmp_path / "imgs")
    picked = select_images(source_images(src), ("c", "a.png"), src)
    assert [p.name for p in picked] == ["a.png", "c.png"]  # stems or names, folder order


def test_unknown_image_name_is_one_line_error(tmp_path):
    src = _image_folder(tmp_path / "imgs")
    result = CliRunner().invoke(bench, ["rd", str(src), "--images", "a,kodim99", "--codecs", "jpeg",
                                        "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "--images: no image named kodim99 in" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_images_and_limit_together_is_one_line_error(tmp_path):
    src = _image_folder(tmp_path / "imgs")
    result = CliRunner().invoke(bench, ["rd", str(src), "--images", "a", "--limit", "1"])
    assert result.exit_code != 0
    assert "--images and --limit" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_steps_is_one_line_error(tmp_path):
    result = CliRunner().invoke(bench, ["rd", str(tmp_path), "--steps", "1000,lots"])
    assert result.exit_code != 0
    assert "--steps 1000,lots" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_slow_codec_is_opt_in_and_needs_chosen_images(monkeypatch, tmp_path):
    from segpic_codec.bench import codecs as bench_codecs

    monkeypatch.setitem(bench_codecs.CODECS, "fake", _fake_slow_codec([]))
    assert "fake" not in bench_codecs.default_codecs()
    assert "jpeg" in bench_codecs.default_codecs()
    src = _image_folder(tmp_path / "imgs")
    result = CliRunner().invoke(bench, ["rd", str(src), "--codecs", "fake,jpeg",
                                        "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "fake takes minutes per image" in result.output and "--images" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_steps_make_one_curve_per_budget(monkeypatch, tmp_path, capsys):
    from segpic_codec.bench import codecs as bench_codecs
    from segpic_codec.bench.config import RunConfig

    calls: list = []
    monkeypatch.setitem(bench_codecs.CODECS, "fake", _fake_slow_codec(calls))
    cfg = RunConfig(
        src=tmp_path, out=tmp_path, quick=False, codecs=("jpeg", "fake"), device="cpu",
        threads=1, limit=None, weights=None, anchors=None, command="segpic bench",
        steps=(1000, 1500, 3000))
    codecs = bench_codecs.build_codecs(cfg)
    assert calls == [cfg]  # the factory gets the run's config
    assert [c.key for c in codecs] == ["jpeg", "fake-1k", "fake-1.5k", "fake-3k"]
    assert [c.steps for c in codecs] == [None, 1000, 1500, 3000]
    assert codecs[1].name == "Fake (1k steps)"
    assert all(c.slow and c.family == "fake" for c in codecs[1:]) and not codecs[0].slow
    # JPEG takes no step budget: a warning line, and a note in the results
    assert cfg.notes == ["--steps 1000,1500,3000 ignored by jpeg: they take no step budget"]
    assert "warning: --steps 1000,1500,3000 ignored by jpeg" in capsys.readouterr().err

    # without --steps: one curve at the codec's own budget, under its plain key
    cfg.steps, cfg.notes = (), []
    codecs = bench_codecs.build_codecs(cfg)
    assert [(c.key, c.steps) for c in codecs] == [("jpeg", None), ("fake", 500)]
    assert cfg.notes == []


def test_images_and_steps_run(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pytorch_msssim")
    import torch

    from segpic_codec.bench import codecs as bench_codecs

    monkeypatch.setitem(bench_codecs.CODECS, "fake", _fake_slow_codec([]))
    src = _image_folder(tmp_path / "imgs")
    out = tmp_path / "o"
    out.mkdir()
    (out / "fake-9k.json").write_text("{}")  # an earlier run's curve: removed
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(bench, ["rd",
            str(src), "--codecs", "fake,jpeg", "--images", "c,a", "--steps", "3000,1000",
            "--out", str(out), "--threads", "1", "--anchors", "none"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "warning: --steps 1000,3000 ignored by jpeg" in result.output
    assert not (out / "fake-9k.json").exists()

    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["codecs"]) == ["jpeg", "fake-1k", "fake-3k"]
    assert summary["codecs"]["fake-3k"]["steps"] == 3000
    assert "steps" not in summary["codecs"]["jpeg"]
    assert summary["environment"]["image_names"] == ["a.png", "c.png"]
    assert "--images c,a --steps 1000,3000" in summary["environment"]["command"]
    for key in ("jpeg", "fake-1k", "fake-3k"):
        d = json.loads((out / f"{key}.json").read_text())
        assert d["images"] == 2 and d["image_names"] == ["a.png", "c.png"], key
    fake = json.loads((out / "fake-3k.json").read_text())
    assert fake["steps"] == 3000 and fake["settings"]["values"] == [1, 2, 3, 4]
    assert fake["results"]["bpp"] == [8 * (40 * s + 30) / 48**2 for s in (1, 2, 3, 4)]
    records = json.loads((out / "per_image.json").read_text())["records"]
    assert {r["image"] for r in records} == {"a.png", "c.png"}
    assert len([r for r in records if r["codec"] == "fake-1k"]) == 8  # no warm-up recorded
    md = (out / "results.md").read_text()
    assert "Fake (1k steps)" in md and "Fake (3k steps)" in md
    assert "--images: only a, c, the same for every codec" in md


def test_per_image_anchors_average_the_chosen_images(tmp_path):
    from segpic_codec.bench.anchors import per_image_anchors

    (tmp_path / "per_image").mkdir()
    (tmp_path / "per_image" / "coolchic-v50.tsv").write_text(
        "image\tlambda\tbpp\tpsnr_rgb\n"
        "a\t0.02\t0.1\t25\na\t0.004\t0.3\t28\n"
        "b\t0.02\t0.3\t27\nb\t0.004\t0.5\t30\n"
        "c\t0.004\t9\t99\n")  # c lacks lambda 0.02
    got = per_image_anchors(tmp_path, ["a", "b"])
    curve = got["coolchic-v50@images"]["results"]
    assert curve["bpp"] == pytest.approx([0.2, 0.4])
    assert curve["psnr-rgb"] == pytest.approx([26.0, 29.0])
    assert "a, b" in got["coolchic-v50@images"]["name"]
    assert per_image_anchors(tmp_path, ["a", "c"]) == {}  # one point in common: no curve
    assert per_image_anchors(None, ["a"]) == {}


# ------------------------------------------------------------------ the subcommands
SUBCOMMANDS = [[], ["rd"], ["points"], ["speed"], ["speed", "steps"], ["speed", "profile"],
               ["speed", "layered"],
               ["speed", "memory"], ["speed", "process"], ["speed", "decode"],
               ["speed", "batch"], ["table"],
               ["table", "runs"], ["table", "regions"], ["table", "screen"]]


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=lambda a: " ".join(a) or "bench")
def test_every_subcommand_has_help(args):
    result = CliRunner().invoke(bench, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:") and " ".join(args) in result.output


def test_bench_group_lists_its_subcommands():
    result = CliRunner().invoke(bench, ["--help"])
    for name in ("rd", "points", "speed", "table"):
        assert f"  {name} " in result.output


def test_bench_imports_no_codec_insides_and_no_circle():
    """The bench is a shared layer: it reaches a codec through the registry
    only, and its modules import each other without a circle."""
    import ast

    folder = REPO / "segpic_codec" / "bench"
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert not target.lstrip(".").startswith(("segpic.", "moric.", "segpic_codec."
                                                          "segpic", "segpic_codec.moric")), \
                    (path.name, target)
                assert not (node.level == 2 and node.module in ("segpic", "moric")), path.name
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(a.name for a in node.names)
        graph[path.stem] = deps & {p.stem for p in folder.glob("*.py")}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join((*trail, module))
        for dep in sorted(graph[module]):
            visit(dep, (*trail, module))

    for module in graph:
        visit(module, ())


def _write_points(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


RATES = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNRS = [28.0, 30.4, 33.1, 35.5, 38.2]


def _vtm_and_avif_run(tmp_path: Path, images: list[str], avif_rate: float
                      ) -> tuple[Path, Path]:
    """An anchors folder with VTM's curve (RATES, PSNRS) and a results folder with
    an AVIF curve on `images` at `avif_rate` x VTM's rates."""
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    (anchors / "vtm.json").write_text(json.dumps(
        {"name": "VTM", "results": {"bpp": RATES, "psnr-rgb": PSNRS}}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "avif.json").write_text(json.dumps(
        {"name": "AVIF", "image_names": images,
         "results": {"bpp": [avif_rate * r for r in RATES], "psnr-rgb": PSNRS}}))
    return anchors, run


def test_table_runs_gives_the_known_bd_rates(tmp_path):
    """VTM's curve, an AVIF run at 1.25 x its rates and MoRIC points at 0.8 x
    on two images: -20% and +25% against VTM, 0.8 / 1.25 - 1 = -36% MoRIC vs AVIF."""
    anchors, run = _vtm_and_avif_run(tmp_path, ["a.png", "b.png"], 1.25)
    rows = [{"image": image, "quality": float(q), "steps": 1000, "regions_asked": "auto",
             "bpp": 0.8 * r * (1.1 if image == "a" else 0.9), "psnr": p}
            for image in ("a", "b") for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
    points = _write_points(tmp_path / "p.jsonl", rows)
    result = CliRunner().invoke(bench, ["table", "runs", str(run), "--anchors", str(anchors),
                                        "--points", str(points), "--label", "test"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Images: a, b"
    assert "| curve | steps | bpp range | vs VTM | vs AVIF |" in lines
    moric = next(line for line in lines if line.startswith("| MoRIC (1k steps, regions auto"))
    assert moric.endswith("| -20.0% | -36.0% |"), moric
    avif = next(line for line in lines if line.startswith("| AVIF"))
    assert avif.endswith("| +25.0% | - |"), avif


def test_table_runs_keeps_recipe_overrides_apart(tmp_path):
    """Points at the same steps and regions, one set made with `--set lr=0.02` at
    half the rate: two curves, the override named, -50% against the other."""
    anchors, run = _vtm_and_avif_run(tmp_path, ["a.png"], 1.0)
    rows = [{"image": "a", "quality": float(q), "steps": 180, "regions_asked": "auto",
             "bpp": r * factor, "psnr": p, **extra}
            for factor, extra in ((1.0, {}), (0.5, {"set": ["lr=0.02"]}))
            for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
    points = _write_points(tmp_path / "p.jsonl", rows)
    result = CliRunner().invoke(bench, ["table", "runs", str(run), "--anchors", str(anchors),
                                        "--points", str(points), "--label", "t"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    plain = next(line for line in lines if line.startswith("| MoRIC (180 steps, regions auto, t)"))
    tuned = next(line for line in lines
                 if line.startswith("| MoRIC (180 steps, regions auto, lr=0.02, t)"))
    # the columns: vs VTM, vs AVIF (both the same curve here)
    assert plain.endswith("| +0.0% | +0.0% |"), plain
    assert tuned.endswith("| -50.0% | -50.0% |"), tuned


def test_table_minutes_gives_bd_rate_by_budget_and_plots(tmp_path):
    """Two series at 180 and 1000 steps: MoRIC at 1.2x and 0.8x VTM's rates gives
    +20% and -20% at the minutes --minutes maps those budgets to; AVIF (1.25x)
    is a line at +25%."""
    anchors, run = _vtm_and_avif_run(tmp_path, ["a.png"], 1.25)
    files = []
    for series, steps, factor in (("today", 180, 1.2), ("now", 1000, 0.8)):
        rows = [{"image": "a", "quality": float(q), "steps": steps, "regions_asked": "auto",
                 "bpp": factor * r, "psnr": p}
                for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
        files += ["--points", f"{series}={_write_points(tmp_path / f'{series}.jsonl', rows)}"]
    plot = tmp_path / "minutes.png"
    result = CliRunner().invoke(bench, ["table", "minutes", str(run), "--anchors", str(anchors),
                                        "--minutes", "180=1,1000=5.7", "--plot", str(plot),
                                        *files])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "| today | MoRIC (180 steps, regions auto, today) | 180 | 1 | +20.0% |" in lines
    assert "| now | MoRIC (1k steps, regions auto, now) | 1000 | 5.7 | -20.0% |" in lines
    assert "| (line) | AVIF | | | +25.0% |" in lines
    assert plot.stat().st_size > 10_000
    missing = CliRunner().invoke(bench, ["table", "minutes", str(run), "--anchors", str(anchors),
                                         "--minutes", "180=1", *files])
    assert missing.exit_code != 0 and "no minutes for 1000 steps" in missing.output


def test_table_minutes_averages_a_series_over_the_images_it_has(tmp_path):
    """Folders on images a and b; "today" has points of a only (at 1.2x VTM's
    rates), "now" of both (a at 0.8x, b at 1.2x, so their mean is VTM's): today
    is averaged over a alone and says so; a series of neither image is refused."""
    anchors, run = _vtm_and_avif_run(tmp_path, ["a.png", "b.png"], 1.25)
    today = [{"image": "a", "quality": float(q), "steps": 180, "regions_asked": "auto",
              "bpp": 1.2 * r, "psnr": p} for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
    now = [{"image": image, "quality": float(q), "steps": 180, "regions_asked": "auto",
            "bpp": factor * r, "psnr": p}
           for image, factor in (("a", 0.8), ("b", 1.2))
           for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
    args = ["table", "minutes", str(run), "--anchors", str(anchors), "--minutes", "180=1",
            "--points", f"today={_write_points(tmp_path / 'today.jsonl', today)}",
            "--points", f"now={_write_points(tmp_path / 'now.jsonl', now)}"]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert ("| today, 1 image | MoRIC (180 steps, regions auto, today, 1 image) | 180 | 1 "
            "| +20.0% |") in lines
    assert "| now | MoRIC (180 steps, regions auto, now) | 180 | 1 | +0.0% |" in lines
    other = [dict(r, image="c") for r in today]
    refused = CliRunner().invoke(bench, [*args[:7], "--points",
                                         f"c={_write_points(tmp_path / 'c.jsonl', other)}"])
    assert refused.exit_code != 0 and "no point of the images a, b" in refused.output


def test_table_runs_missing_point_is_one_line_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "avif.json").write_text(json.dumps(
        {"name": "AVIF", "image_names": ["a.png", "b.png"],
         "results": {"bpp": RATES, "psnr-rgb": PSNRS}}))
    points = _write_points(tmp_path / "p.jsonl", [
        {"image": "a", "quality": 1.0, "steps": 1000, "bpp": 0.1, "psnr": 30.0}])
    result = CliRunner().invoke(bench, ["table", "runs", str(run), "--anchors", str(tmp_path),
                                        "--points", str(points)])
    assert result.exit_code != 0
    assert "no point for b" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_table_regions_gives_the_known_bd_rate_and_contour_share(tmp_path):
    pixels = 1000
    many = [{"image": "a", "quality": float(q), "steps": 1000, "bpp": 0.8 * r, "psnr": p,
             "contour_bytes": 10} for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
    one = [{"image": "a", "quality": float(q), "steps": 1000, "bpp": r, "psnr": p}
           for q, (r, p) in enumerate(zip(RATES, PSNRS, strict=True))]
    result = CliRunner().invoke(bench, [
        "table", "regions", str(_write_points(tmp_path / "n3.jsonl", many)),
        str(_write_points(tmp_path / "n1.jsonl", one)), "--anchor", "none",
        "--pixels", str(pixels)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| a |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["a", "1000", "-20.0%", "n/a", "n/a"]
    # contour share at quality 0: 8 * 10 bytes / (0.08 bpp * 1000 pixels) = 100%
    assert cells[5].startswith("q0: 100.00%, q1: 50.00%")


def test_table_screen_compares_points_at_equal_psnr(tmp_path):
    """Each variant point against the base's curve of its image at its PSNR:
    log-rate linear in PSNR between the two base points around it, and past
    the ends along the nearest two."""
    from segpic_codec.bench.screen import rate_change

    base = [(0.1, 25.0), (0.4, 31.0), (1.0, 35.0)]
    assert rate_change(base, 0.2, 28.0) == pytest.approx(0.0)  # on the curve
    assert rate_change(base, 0.18, 28.0) == pytest.approx(-10.0)
    assert rate_change(base, 2.0, 39.0) == pytest.approx(-20.0)  # past the end: 2.5 bpp
    base_rows = [{"image": "a", "quality": q, "bpp": r, "psnr": p}
                 for q, (r, p) in enumerate(base)]
    variant = [{"image": "a", "quality": 1.5, "bpp": 0.18, "psnr": 28.0},
               {"image": "a", "quality": 5.0, "bpp": 2.0, "psnr": 39.0},
               {"image": "b", "quality": 1.0, "bpp": 1.0, "psnr": 20.0}]  # not in the base
    result = CliRunner().invoke(bench, [
        "table", "screen", str(_write_points(tmp_path / "base.jsonl", base_rows)),
        str(_write_points(tmp_path / "knob.jsonl", variant))])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| knob |"))
    assert "a q1.5: -10.0%, a q5: -20.0%" in row and row.endswith("| -15.0% |")


def _tiny_png(path: Path, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (size // 8 + 1, size // 8 + 1, 3))
    pixels = np.kron(small, np.ones((8, 8, 1)))[:size, :size].astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_points_moric_tiny_budget(tmp_path):
    """Two optimisation steps on a 32x32 image: a real file, its fields, and a
    second run with the same --out resumes (measures nothing again)."""
    import torch

    image = _tiny_png(tmp_path / "tiny.png")
    out = tmp_path / "points.jsonl"
    args = ["points", str(image), "--codec", "moric", "--quality", "3", "--steps", "2",
            "--threads", "1", "--anchor", "none", "--out", str(out),
            "--save-dir", str(tmp_path / "files")]
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(bench, args)
        again = CliRunner().invoke(bench, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert list(row)[:6] == ["image", "quality", "preset", "steps", "threads", "bpp"]
    assert row["image"] == "tiny" and row["quality"] == 3.0 and row["steps"] == 2
    assert row["exact"] is True and row["regions_asked"] == "auto"
    saved = tmp_path / "files" / "tiny-q3-2-auto.spic"
    assert row["file_bytes"] == saved.stat().st_size
    assert row["bpp"] == 8 * row["file_bytes"] / (32 * 32)
    assert row["file_bytes"] > row["params_bytes"] > 0
    from segpic_codec import codecs
    from segpic_codec.image_io import load_image

    decoded = codecs.decode(saved.read_bytes())
    assert row["psnr"] == pytest.approx(psnr_rgb(load_image(image).pixels, decoded))
    assert again.exit_code == 0 and again.output.strip() == ""
    assert len(out.read_text().splitlines()) == 1


def test_points_budget_for_a_codec_without_one_is_one_line_error(tmp_path):
    image = _tiny_png(tmp_path / "tiny.png")
    result = CliRunner().invoke(bench, ["points", str(image), "--codec", "segpic",
                                        "--steps", "5"])
    assert result.exit_code != 0
    assert "segpic takes no step or time budget" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _invoke_keeping_threads(args: list[str]):
    """The bench's speed commands set torch's thread count: put it back."""
    import torch

    threads = torch.get_num_threads()
    try:
        return CliRunner().invoke(bench, args)
    finally:
        torch.set_num_threads(threads)


def test_speed_layered_tiny(tmp_path):
    image = _tiny_png(tmp_path / "tiny.png")
    result = _invoke_keeping_threads(["speed", "layered", str(image), "--steps", "2",
                                      "--repeats", "1"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[0]["decode"] == "full" and rows[0]["image"] == "tiny"
    regions = rows[0]["regions"]
    assert [r["decode"] for r in rows[1:]] == [f"region {r}" for r in range(regions)]
    assert sum(r["share"] for r in rows[1:]) == pytest.approx(1.0, abs=0.01)


def test_speed_profile_tiny(tmp_path):
    image = _tiny_png(tmp_path / "tiny.png")
    result = _invoke_keeping_threads(["speed", "profile", str(image), "--repeats", "1",
                                      "--regions", "1,2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [r["regions"] for r in rows] == [1, 2]
    for row in rows:
        # every labelled piece of the step was seen by the profiler, and together
        # with "other" they make up the step
        pieces = ("upsampling", "rate", "synthesis", "gradients", "quantise", "optimiser")
        assert all(row["seconds"][p] > 0 for p in pieces), row
        assert sum(row["seconds"].values()) == pytest.approx(row["s_per_step"], abs=1e-3)


def test_speed_decode_against_a_commit(tmp_path):
    """Whole-process decodes of a committed MoRIC file by this code and by HEAD
    (a temporary worktree, removed afterwards), beside Pillow's WebP decode."""
    import subprocess

    spic = REPO / "tests" / "data" / "moric-v3" / "parrots-48x40-auto.spic"
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                      capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    before = subprocess.run(["git", "-C", str(REPO), "worktree", "list"],
                            capture_output=True, text=True).stdout
    out = tmp_path / "times.jsonl"
    result = CliRunner().invoke(bench, ["speed", "decode", str(spic), "--against", "HEAD",
                                        "--runs", "2", "--image", str(EXAMPLE_PNG),
                                        "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["decoder"] for r in rows[:2]] == ["this code", "commit HEAD"]
    assert all(r["runs"] == 2 and r["median_s"] > 0 and r["peak_mib"] > 0 for r in rows)
    assert rows[0]["ratio_to_other"] > 0 and "ratio_to_other" not in rows[1]
    assert any(r["decoder"] == "Pillow WEBP" and r["bytes"] > 0 for r in rows[2:])
    assert subprocess.run(["git", "-C", str(REPO), "worktree", "list"],
                          capture_output=True, text=True).stdout == before


# ------------------------------------------------------------------ the plot
def test_curve_styles_are_distinct():
    from segpic_codec.bench.plot import curve_styles

    measured = [(f"moric-{s}", "moric") for s in ("1k", "3k", "1k-n3", "3k-n3", "a", "b")]
    measured += [("segpic", "segpic"), ("jpeg", "jpeg"), ("webp", "webp"), ("avif", "avif")]
    published = ["vtm", "paper-segpic2024_mse", "jpeg", "webp", "coolchic-v50@images"]
    styles = curve_styles(measured, published)
    assert len(styles) == len(measured) + len(published)
    colours = [c for c, _ in styles]
    markers = [m for _, m in styles]
    assert len(set(colours)) == len(colours), colours
    assert len(set(markers)) == len(markers), markers


def test_plot_draws_each_curve_in_its_own_style_and_legend_order(monkeypatch, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segpic_codec.bench.codecs import BenchCodec
    from segpic_codec.bench.plot import plot_rd

    keys = [f"moric-{i}" for i in range(6)] + ["avif"]
    codecs = [BenchCodec(k, k, "", (), (), "", lambda *a: None, family=k.split("-")[0])
              for k in keys]
    results = {k: {"results": {"bpp": [0.1 * (i + 1), 0.5], "psnr-rgb": [30.0 + i, 35.0]}}
               for i, k in enumerate(keys)}
    anchors = {"vtm": {"results": {"bpp": [0.1, 0.5], "psnr-rgb": [31.0, 36.0]}}}
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_rd(tmp_path / "rd.png", codecs, results, anchors, "t")
    (ax,) = figures[0].axes
    lines = ax.get_lines()
    assert len(lines) == 8
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in lines]
    markers = [line.get_marker() for line in lines]
    assert len(set(colours)) == 8 and len(set(markers)) == 8, (colours, markers)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [line.get_label() for line in lines]
    assert legend[0].startswith("moric-0") and legend[-1] == "VTM (published)"
    monkeypatch.undo()
    plt.close(figures[0])

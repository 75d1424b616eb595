"""The command line: round trips, info, bad inputs, batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, REPO, random_image
from PIL import Image

from segpic_codec.cli import main


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_encode_decode_info(tiny_weights, tmp_path):
    src = _png(tmp_path / "in.png", random_image(50, 77))
    spic, out = tmp_path / "a.spic", tmp_path / "out.png"
    r = run("encode", src, spic, "--weights", tiny_weights, "-q", "2.5", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "bpp" in r.stdout
    r = run("decode", spic, out, "--weights", tiny_weights)
    assert r.exit_code == 0, r.output
    decoded = np.asarray(Image.open(out))
    assert decoded.shape == (50, 77, 3)
    r = run("info", spic, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["width"] == 77 and info["height"] == 50 and info["model"] == "tiny"
    assert info["quality"] == 2.5
    assert len(info["streams"]) == 13
    assert info["bytes"] == spic.stat().st_size
    assert run("info", spic).exit_code == 0


def _file_bpp_and_quality(spic: Path) -> tuple[float, float]:
    info = json.loads(run("info", spic, "--json").stdout)
    return 8 * spic.stat().st_size / (info["width"] * info["height"]), info["quality"]


def test_bpp_option(tiny_weights, tiny_codec, tmp_path):
    """--bpp B: the highest quality whose file has at most B bits per pixel (with
    --strip, nothing but the image: no target record, tests/test_cli_targets.py)."""
    src = _png(tmp_path / "in.png", random_image(96, 96))
    top = tmp_path / "top.spic"
    r = run("encode", src, top, "--weights", tiny_weights, "-q", tiny_codec.num_qualities)
    assert r.exit_code == 0, r.output
    top_bpp, _ = _file_bpp_and_quality(top)
    assert top_bpp <= 20  # so --bpp 20 allows the highest quality
    r = run("encode", src, tmp_path / "a.spic", "--weights", tiny_weights, "--bpp", "20",
            "--strip")
    assert r.exit_code == 0, r.output
    assert _file_bpp_and_quality(tmp_path / "a.spic") == (top_bpp, tiny_codec.num_qualities)
    # a target below the highest quality's rate: a lower quality, within the target
    low = tmp_path / "low.spic"
    assert run("encode", src, low, "--weights", tiny_weights, "-q", "1").exit_code == 0
    low_bpp, _ = _file_bpp_and_quality(low)
    target = (low_bpp + top_bpp) / 2
    r = run("encode", src, tmp_path / "b.spic", "--weights", tiny_weights, "--bpp", target,
            "--strip")
    assert r.exit_code == 0, r.output
    bpp, quality = _file_bpp_and_quality(tmp_path / "b.spic")
    assert bpp <= target and 1 <= quality < tiny_codec.num_qualities
    r = run("encode", src, tmp_path / "c.spic", "--weights", tiny_weights, "--bpp", "1", "-q", "2")
    assert r.exit_code == 2


@pytest.mark.parametrize("mode,warning", [("L", "gray"), ("P", "palette"), ("RGBA", "alpha"),
                                          ("I;16", "8-bit")])
def test_input_conversions_warn(tiny_weights, tmp_path, mode, warning):
    rgb = random_image(20, 30)
    if mode == "L":
        img = Image.fromarray(rgb[:, :, 0])
    elif mode == "P":
        img = Image.fromarray(rgb).convert("P")
    elif mode == "RGBA":
        img = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]))
    else:
        img = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
        assert img.mode.startswith("I;16")
    src = tmp_path / "in.png"
    img.save(src)
    r = run("encode", src, tmp_path / "a.spic", "--weights", tiny_weights)
    assert r.exit_code == 0, r.output
    assert "warning" in r.stderr and warning in r.stderr


def _bad_spic_files(tiny_weights, tmp_path) -> dict[str, Path]:
    src = _png(tmp_path / "in.png", random_image(40, 40))
    good = tmp_path / "good.spic"
    assert run("encode", src, good, "--weights", tiny_weights).exit_code == 0
    data = good.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "flipped": data[:30] + bytes([data[30] ^ 1]) + data[31:],
        "magic": b"XXXX" + data[4:],
        "empty": b"",
        "png": src.read_bytes(),
    }
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.spic"
        out[name].write_bytes(content)
    out["missing"] = tmp_path / "missing.spic"
    out["folder"] = tmp_path
    return out


def test_bad_spic_files_give_one_line_errors(tiny_weights, tmp_path):
    for name, path in _bad_spic_files(tiny_weights, tmp_path).items():
        r = run("decode", path, tmp_path / "x.png", "--weights", tiny_weights)
        assert r.exit_code == 2, (name, r.output)
        assert r.stderr.startswith("segpic: error:"), (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert not (tmp_path / "x.png").exists()
        if name not in ("missing", "folder"):
            assert run("info", path).exit_code == 2


def test_bad_images_give_one_line_errors(tiny_weights, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    text = tmp_path / "text.png"
    text.write_text("hello")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (broken, text, empty, tmp_path / "missing.png"):
        r = run("encode", path, tmp_path / "x.spic", "--weights", tiny_weights)
        assert r.exit_code == 2, (path, r.output)
        assert r.stderr.startswith("segpic: error:"), r.stderr
        assert not (tmp_path / "x.spic").exists()


def test_missing_weights_points_to_readme(tmp_path):
    src = _png(tmp_path / "in.png", random_image(8, 8))
    r = run("encode", src, tmp_path / "x.spic", env={"SEGPIC_WEIGHTS": str(tmp_path / "none")})
    assert r.exit_code == 2
    assert "README" in r.stderr


def test_no_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.spic"
    bad.write_bytes(b"SPIC\x01garbage")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "segpic_codec", "decode", str(bad),
                           str(tmp_path / "o.png")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("segpic: error:")


def test_batch_with_a_corrupt_image(tiny_weights, tmp_path):
    src, dst, back = tmp_path / "src", tmp_path / "dst", tmp_path / "back"
    (src / "sub").mkdir(parents=True)
    _png(src / "a.png", random_image(30, 40, seed=1))
    _png(src / "sub" / "b.png", random_image(70, 20, seed=2))
    (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(300))
    (src / "notes.txt").write_text("not an image")
    r = run("batch", src, dst, "--weights", tiny_weights)
    assert r.exit_code == 1, r.output
    assert (dst / "a.spic").is_file() and (dst / "sub" / "b.spic").is_file()
    assert not (dst / "sub" / "broken.spic").exists()
    assert "broken.jpg" in r.stdout and "2 done" in r.stdout
    assert not [p for p in dst.rglob("*") if p.name.endswith(".part")]
    # a rerun only retries what is missing
    before = (dst / "a.spic").stat().st_mtime_ns
    r = run("batch", src, dst, "--weights", tiny_weights)
    assert "0 done, 2 skipped" in r.stdout
    assert (dst / "a.spic").stat().st_mtime_ns == before
    r = run("batch", dst, back, "--decode", "--weights", tiny_weights)
    assert r.exit_code == 0, r.output
    assert np.asarray(Image.open(back / "sub" / "b.png")).shape == (70, 20, 3)


def test_example_image_with_shipped_weights(tmp_path):
    if not (REPO / "weights" / "small" / "manifest.json").is_file():
        pytest.skip("shipped weights not present")
    spic, out = tmp_path / "p.spic", tmp_path / "p.png"
    assert run("encode", EXAMPLE, spic, "-q", "3", "--device", "cpu").exit_code == 0
    assert run("decode", spic, out, "--device", "cpu").exit_code == 0
    a = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(np.float64)
    b = np.asarray(Image.open(out)).astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert a.shape == b.shape
    assert psnr > 24

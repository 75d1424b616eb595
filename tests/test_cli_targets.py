"""--bpp, --size, --psnr and --best-effort on `segpic encode` and `segpic batch`,
and the target `segpic info` shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image

from segpic_codec.cli import main


def run(*args, input: bytes | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("targets") / "in.png"
    Image.fromarray(random_image(48, 64, seed=8)).save(path)
    return path


def _info(path: Path) -> dict:
    r = run("info", path, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_size_target_and_info(png, tiny_weights, tmp_path):
    lowest, highest = tmp_path / "lo.spic", tmp_path / "hi.spic"
    assert run("encode", png, lowest, "--weights", tiny_weights, "-q", "1").exit_code == 0
    assert run("encode", png, highest, "--weights", tiny_weights, "-q", "6").exit_code == 0
    goal = (lowest.stat().st_size + highest.stat().st_size) // 2 + 250  # + the record
    out = tmp_path / "a.spic"
    r = run("encode", png, out, "--weights", tiny_weights, "--size", goal)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size <= goal
    assert f"target {goal} bytes met" in r.stdout and "trial encodes" in r.stdout
    info = _info(out)
    assert info["target"] == {"kind": "size", "value": goal, "met": True}
    assert "size" in run("info", out).stdout
    # a file encoded with --quality has no target
    assert _info(lowest)["target"] is None
    # k is 1000 bytes
    r = run("encode", png, tmp_path / "k.spic", "--weights", tiny_weights, "--size", "3k")
    assert r.exit_code == 0 and _info(tmp_path / "k.spic")["target"]["value"] == 3000


def test_psnr_target(png, tiny_weights, tmp_path):
    out = tmp_path / "p.spic"
    r = run("encode", png, out, "--weights", tiny_weights, "--psnr", "5")
    assert r.exit_code == 0, r.output
    assert "5 dB PSNR met" in r.stdout
    assert _info(out)["target"]["kind"] == "psnr"


@pytest.mark.parametrize("args", [("--size", "1k", "--psnr", "30"), ("--size", "1k", "-q", "2"),
                                  ("--bpp", "1", "--psnr", "30"), ("--size", "40x"),
                                  ("--size", "0"), ("--psnr", "-3"), ("--best-effort",)])
def test_bad_target_options(png, tiny_weights, tmp_path, args):
    r = run("encode", png, tmp_path / "a.spic", "--weights", tiny_weights, *args)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not (tmp_path / "a.spic").exists()


def test_unreachable_target_exit_2_or_best_effort(png, tiny_weights, tmp_path):
    out = tmp_path / "a.spic"
    r = run("encode", png, out, "--weights", tiny_weights, "--size", "100")
    assert r.exit_code == 2
    assert "cannot meet 100 bytes: the lowest quality (1) gives" in r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()
    r = run("encode", png, out, "--weights", tiny_weights, "--psnr", "99")
    assert r.exit_code == 2 and "the highest quality" in r.stderr and not out.exists()
    r = run("encode", png, out, "--weights", tiny_weights, "--size", "100", "--best-effort")
    assert r.exit_code == 0, r.output
    assert "best effort" in r.stderr and "NOT met" in r.stdout
    assert _info(out)["target"] == {"kind": "size", "value": 100, "met": False}


def test_strip_leaves_the_record_out(png, tiny_weights, tmp_path):
    out = tmp_path / "a.spic"
    r = run("encode", png, out, "--weights", tiny_weights, "--bpp", "8", "--strip")
    assert r.exit_code == 0, r.output
    info = _info(out)
    assert info["target"] is None and info["metadata"] == [] and info["format_version"] == 2


def test_decoded_image_has_no_record(png, tiny_weights, tmp_path):
    out = tmp_path / "a.spic"
    assert run("encode", png, out, "--weights", tiny_weights, "--bpp", "8").exit_code == 0
    assert run("decode", out, tmp_path / "a.png", "--weights", tiny_weights).exit_code == 0
    assert "xmp" not in str(Image.open(tmp_path / "a.png").info).lower()


def test_batch_size_target(png, tiny_weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        (src / f"{name}.png").write_bytes(png.read_bytes())
    r = run("batch", src, tmp_path / "out", "--weights", tiny_weights, "--size", "900")
    assert r.exit_code == 0, r.output
    for name in ("a", "b"):
        out = tmp_path / "out" / f"{name}.spic"
        assert out.stat().st_size <= 900 and _info(out)["target"]["value"] == 900
    r = run("batch", src, tmp_path / "out2", "--weights", tiny_weights, "--size", "50")
    assert r.exit_code == 1 and "cannot meet 50 bytes" in r.output

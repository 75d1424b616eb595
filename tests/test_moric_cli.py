"""MoRIC through the command line: encode/decode/info/batch with a few steps, the
flags that do not apply, and a clean stop on Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, random_image
from PIL import Image

from segpic_codec import codecs
from segpic_codec.cli import main

ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(random_image(21, 34, seed=5)).save(path)
    return path


def test_encode_decode_info(png, tmp_path):
    spic, out = tmp_path / "a.spic", tmp_path / "out.png"
    r = run("encode", png, spic, "--codec", "moric", "--steps", "4", "-q", "3",
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "bpp" in r.stdout
    r = run("decode", spic, out)
    assert r.exit_code == 0, r.output
    decoded = np.asarray(Image.open(out))
    assert decoded.shape == (21, 34, 3)
    assert np.array_equal(decoded, codecs.decode(spic.read_bytes()))
    info = json.loads(run("info", spic, "--json").stdout)
    assert info["codec"] == "moric" and (info["width"], info["height"]) == (34, 21)
    assert sum(s["bytes"] for s in info["streams"]) <= info["bytes"]
    assert run("info", spic).exit_code == 0


def test_bpp_and_weights_do_not_apply(png, tmp_path):
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", "--bpp", "0.5")
    assert r.exit_code == 2 and "--quality" in r.output
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", "--weights", tmp_path)
    assert r.exit_code == 2 and "--weights does not apply" in r.output
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", "--preset", "nope")
    assert r.exit_code == 2 and "preset" in r.output
    assert not (tmp_path / "a.spic").exists()


def test_batch_with_a_broken_image(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(2):
        Image.fromarray(random_image(9, 13, seed=i)).save(src / f"ok{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run("batch", src, dst, "--codec", "moric", "--steps", "3", "--device", "cpu")
    assert r.exit_code == 1
    assert "2 done" in r.output and "1 failed" in r.output
    assert sorted(p.name for p in dst.iterdir()) == ["ok0.spic", "ok1.spic"]
    r = run("batch", dst, tmp_path / "back", "--decode")
    assert r.exit_code == 0, r.output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signals", [1, 2])
def test_interrupt_writes_the_best_state_or_nothing(tmp_path, signals):
    """One SIGTERM: the optimisation stops and a valid file is written (and said
    so); a second one aborts. Either way no partial file is ever left."""
    src, spic = tmp_path / "in.png", tmp_path / "a.spic"
    Image.fromarray(random_image(24, 24, seed=9)).save(src)
    proc = subprocess.Popen([sys.executable, "-m", "segpic_codec", "encode", str(src),
                             str(spic), "--codec", "moric", "--steps", "1000000",
                             "--device", "cpu"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # imports and the first steps
    for _ in range(signals):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("in.png", "a.spic")]
    assert leftovers == []
    if proc.returncode == 0:
        assert "stopped early" in err
        assert codecs.decode(spic.read_bytes()).shape == (24, 24, 3)
    else:
        assert signals == 2 and proc.returncode == 130, (proc.returncode, err)
        assert "interrupted" in err and not spic.exists()
    if signals == 1:
        assert proc.returncode == 0, err

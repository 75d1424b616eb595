"""Every file segpic writes gets the mode a plain `open()` gives under the umask
(0666 & ~umask: 0644 under 022, 0640 under 027), as cwebp or cjxl do, not the 0600
of a temporary file: encode, decode, batch (in this process, in worker processes
and in Ray tasks) and the Pillow plugin's save."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image

from segpic_codec.cli import main

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")

UMASKS = [0o022, 0o027]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request):
    """Set the process umask (inherited by worker processes started under it) and
    restore the previous one after the test."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _expected(umask: int) -> int:
    return 0o666 & ~umask


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_image(32, 40, seed=seed)).save(path)
    return path


def _run(*args: object) -> None:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output


def test_encode_and_decode(umask, tiny_weights, tmp_path):
    src = _image(tmp_path / "in.png")
    _run("encode", src, tmp_path / "out.spic", "--weights", tiny_weights, "-q", "2",
         "--device", "cpu")
    _run("decode", tmp_path / "out.spic", tmp_path / "out.png", "--weights", tiny_weights,
         "--device", "cpu")
    assert oct(_mode(tmp_path / "out.spic")) == oct(_expected(umask))
    assert oct(_mode(tmp_path / "out.png")) == oct(_expected(umask))


@pytest.mark.parametrize("executor", [[], ["--jobs", "2"]], ids=["inline", "processes"])
def test_batch(umask, executor, tiny_weights, tmp_path):
    for i, name in enumerate(["a.png", "sub/b.png"]):
        _image(tmp_path / "src" / name, seed=i)
    _run("batch", tmp_path / "src", tmp_path / "spic", "--weights", tiny_weights, "-q", "2",
         "--device", "cpu", *executor)
    _run("batch", tmp_path / "spic", tmp_path / "png", "--decode", "--weights", tiny_weights,
         "--device", "cpu", *executor)
    outputs = sorted((tmp_path / "spic").rglob("*.spic")) + sorted(
        (tmp_path / "png").rglob("*.png"))
    assert len(outputs) == 4
    assert {p.name: oct(_mode(p)) for p in outputs} == {
        p.name: oct(_expected(umask)) for p in outputs}


def test_batch_ray(umask, tiny_weights, tmp_path):
    """A local Ray cluster started by the command, whose workers inherit its umask."""
    pytest.importorskip("ray", reason="Ray not installed (the cluster extra)")
    _image(tmp_path / "src" / "a.png")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "segpic_codec", "batch", str(tmp_path / "src"),
                           str(tmp_path / "dst"), "--executor", "ray", "--jobs", "1",
                           "--weights", str(tiny_weights), "-q", "2", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert oct(_mode(tmp_path / "dst" / "a.spic")) == oct(_expected(umask))


def test_pillow_save(umask, tiny_weights, tmp_path):
    import segpic_codec.pillow  # noqa: F401 - registers the format

    Image.fromarray(random_image(32, 40)).save(tmp_path / "x.spic", quality=2,
                                                weights=tiny_weights, device="cpu")
    assert oct(_mode(tmp_path / "x.spic")) == oct(_expected(umask))

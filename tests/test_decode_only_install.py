"""A decode-only install (`pip install segpic`, without the `encode` extra):
MoRIC files decode; SegPIC files and encoding say in one line which install
they need. A fresh process where torch, scikit-image and SciPy cannot be
imported stands for that install (tests/test_moric_decoder.py checks that
decoding MoRIC files imports none of them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MORIC = REPO / "tests" / "data" / "moric-v3" / "parrots-48x40-auto.spic"
SEGPIC = REPO / "tests" / "data" / "v1" / "parrots-64x48-q1.spic"
INSTALL = 'pip install "segpic[encode]"'
# `import torch` (and the others) raise ModuleNotFoundError, as when not installed
LAUNCHER = ("import sys\nfor name in ('torch', 'skimage', 'scipy'):\n"
            "    sys.modules[name] = None\n")


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-c", LAUNCHER + code], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run(f"from segpic_codec.cli import main\nsys.argv = ['segpic', *{list(args)!r}]\n"
                "main()\n", cwd)


def test_moric_files_decode(tmp_path):
    done = _cli("decode", str(MORIC), "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = np.asarray(Image.open(MORIC.with_name(MORIC.stem + ".decoded.png")))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


@pytest.mark.parametrize("args, what", [
    (("decode", str(SEGPIC), "out.png"), "decoding SegPIC files"),
    (("encode", str(REPO / "examples" / "parrots.png"), "out.spic"), "encoding with SegPIC"),
    (("encode", "--codec", "moric", str(REPO / "examples" / "parrots.png"), "out.spic"),
     "encoding with MoRIC"),
    (("train", "--data", ".", "--run-dir", "run"), "this command"),
])
def test_the_rest_names_the_install(tmp_path, args, what):
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and what in lines[0] and "PyTorch" in lines[0], done.stderr
    assert lines[0].endswith(INSTALL)
    assert not (tmp_path / "out.spic").exists() and not (tmp_path / "out.png").exists()


def test_batch_decodes_moric_files_in_worker_processes(tmp_path):
    """`segpic batch --decode --jobs 2`: each worker is a fresh (spawned)
    interpreter, so a package named torch that cannot be imported stands for
    the missing install there too."""
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ModuleNotFoundError('no torch')\n")
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        (tmp_path / "in" / f"{name}.spic").write_bytes(MORIC.read_bytes())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(REPO)]), COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "segpic_codec", "batch", "in", "out",
                           "--decode", "--jobs", "2"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "0 failed" in done.stdout + done.stderr, done.stderr
    expected = np.asarray(Image.open(MORIC.with_name(MORIC.stem + ".decoded.png")))
    for name in ("a", "b"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{name}.png")),
                                      expected)


def test_pillow_plugin_names_the_install(tmp_path):
    code = ("import segpic_codec.pillow\nfrom PIL import Image\n"
            f"Image.open({str(MORIC)!r}).load()\n"
            "try:\n"
            f"    Image.open({str(SEGPIC)!r}).load()\n"
            "except OSError as exc:\n    print(exc)\n")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(INSTALL) and "SegPIC" in done.stdout


def test_the_base_install_has_no_torch():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for heavy in ("torch", "scikit-image"):
        assert heavy not in base
        assert any(d.startswith(heavy) for d in extras["encode"])
    assert "segpic[encode]" in extras["test"]

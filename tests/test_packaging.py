"""Packaging as a new user meets it: a regular (not editable) install from a wheel
or an sdist carries the shipped weights, so `segpic encode` works from any folder.

The wheel is built from this checkout, installed into a fresh folder outside it,
and run from another folder with the checkout's own import path (the editable
install of the test environment) taken away."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLE, REPO, SHIPPED

pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped weights not present")

# Runs the installed package only: drops the editable-install finder (which would
# map `segpic_codec` back to the checkout) and the checkout from sys.path.
LAUNCHER = """
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path = [p for p in sys.path if not p.startswith({repo!r})]
import segpic_codec
assert segpic_codec.__file__.startswith({site!r}), segpic_codec.__file__
from segpic_codec.cli import main
sys.argv = ["segpic", *sys.argv[1:]]
main()
"""


def _build(kind: str, out: Path) -> Path:
    # setuptools straight from this environment: no network, no build isolation
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "-q", "-w", str(out), str(REPO)] if kind == "wheel" else [
        sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "sdist",
        "-d", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO, timeout=600, capture_output=True)
    suffix = ".whl" if kind == "wheel" else ".tar.gz"
    (built,) = out.glob(f"*{suffix}")
    return built


def _weights_files() -> set[str]:
    return {p.name for p in SHIPPED.parent.iterdir() if p.is_file()}


def test_wheel_installs_weights_and_codes_from_anywhere(tmp_path):
    wheel = _build("wheel", tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("segpic_codec/shipped_weights/small/")}
    assert _weights_files() <= shipped, names
    # MoRIC's network prior, which prior-coded files need to decode
    priors = {p.name for p in (REPO / "weights" / "moric").glob("*.safetensors")}
    assert priors and priors <= {Path(n).name for n in names
                                 if n.startswith("segpic_codec/shipped_weights/moric/")}
    # every module of the source tree, subpackages included (pyproject lists them)
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "segpic_codec").rglob("*.py")}
    assert sources <= set(names), sorted(sources - set(names))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, timeout=600, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    launcher = LAUNCHER.format(repo=str(REPO), site=str(site))
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"}
    for args in (["encode", str(EXAMPLE), "parrots.spic", "--device", "cpu"],
                 ["decode", "parrots.spic", "parrots.png", "--device", "cpu"]):
        run = subprocess.run([sys.executable, "-c", launcher, *args], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
    assert (elsewhere / "parrots.png").stat().st_size > 0


def test_sdist_carries_the_weights(tmp_path):
    sdist = _build("sdist", tmp_path / "dist")
    with tarfile.open(sdist) as tar:
        names = {Path(n).name for n in tar.getnames() if "/weights/small/" in n}
        priors = {Path(n).name for n in tar.getnames() if "/weights/moric/" in n}
    assert _weights_files() <= names
    assert {p.name for p in (REPO / "weights" / "moric").glob("*.safetensors")} <= priors

"""Choosing a codec on the command line: --codec, options that belong to one codec,
the MoRIC budget flags and their errors (the MoRIC round trips through the CLI
are in test_moric_cli.py)."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image

from segpic_codec.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(random_image(20, 30)).save(path)
    return path


def test_unknown_codec_is_a_usage_error(png, tmp_path):
    r = run("encode", png, tmp_path / "a.spic", "--codec", "jpeg")
    assert r.exit_code == 2
    assert "jpeg" in r.output and "moric" in r.output and "segpic" in r.output
    assert not (tmp_path / "a.spic").exists()


@pytest.mark.parametrize("flags,message", [
    (["--steps", "0"], "--steps"),
    (["--steps", "-5"], "--steps"),
    (["--time-limit", "0s"], "must be positive"),
    (["--time-limit", "-3m"], "must be positive"),
    (["--time-limit", "ten minutes"], "not a duration"),
])
def test_bad_budget_flags(png, tmp_path, flags, message):
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", *flags)
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "a.spic").exists()


@pytest.mark.parametrize("codec,flags,flag", [
    ("segpic", ["--steps", "10"], "--steps"),
    ("segpic", ["--time-limit", "10m"], "--time-limit"),
    ("segpic", ["--preset", "fast"], "--preset"),
    ("moric", ["--grid", "2"], "--grid"),
    ("moric", ["--model", "tiny"], "--model"),
])
def test_options_of_another_codec_are_refused(png, tmp_path, tiny_weights, codec, flags, flag):
    r = run("encode", png, tmp_path / "a.spic", "--codec", codec, *flags)
    assert r.exit_code == 2
    assert f"{flag} does not apply to --codec {codec}" in r.output
    assert not (tmp_path / "a.spic").exists()


def test_segpic_stays_the_default_and_info_names_the_codec(png, tmp_path, tiny_weights):
    spic = tmp_path / "a.spic"
    r = run("encode", png, spic, "--weights", tiny_weights, "--device", "cpu")
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", spic, "--json").stdout)
    assert info["codec"] == "segpic" and info["format_version"] == 2


def test_info_imports_no_torch(tmp_path, png, tiny_weights):
    """Nor numpy or Pillow: the command group imports a command's module on use
    (cli.base.LazyGroup), which keeps `segpic info` to a fraction of a second."""
    import subprocess

    spic = tmp_path / "a.spic"
    assert run("encode", png, spic, "--weights", tiny_weights, "--device", "cpu").exit_code == 0
    code = ("import sys\nfrom segpic_codec.cli import main\n"
            f"sys.argv = ['segpic', 'info', {str(spic)!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'PIL'})\n"
            "assert not heavy, f'info imported {heavy}'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "segpic" in done.stdout

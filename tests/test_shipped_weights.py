"""The shipped weights on a real photo: loads, every quality decodes bit-exactly
in a fresh process, and rate grows with quality."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import KODAK, REPO, SHIPPED

from segpic_codec.image_io import load_image
from segpic_codec.segpic.codec import Codec

pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped weights not present")


def test_manifest_is_complete():
    manifest = json.loads(SHIPPED.read_text())
    assert manifest["model"] == "small"
    assert len(manifest["qualities"]) == 6
    assert all(f["bytes"] <= 16 * 2**20 for f in manifest["files"])
    assert sum(f["bytes"] for f in manifest["files"]) <= 32 * 2**20
    for key in ("steps", "images_seen", "hardware", "dataset", "date"):
        assert key in manifest["training"]


@pytest.mark.skipif(not KODAK.is_dir(), reason="../shared/data/kodak not present")
def test_kodak_image_every_quality_bit_exact(tmp_path):
    codec = Codec.load(device="cpu")
    pixels = load_image(KODAK / "kodim23.png").pixels[:256, :384]
    results = [codec.encode(pixels, quality=q) for q in range(1, 7)]
    sizes = [len(r.data) for r in results]
    assert sizes == sorted(sizes), sizes
    for i, r in enumerate(results):
        (tmp_path / f"{i}.spic").write_bytes(r.data)
    code = (
        "import numpy as np\n"
        "from segpic_codec.segpic.codec import Codec\n"
        "c = Codec.load(device='cpu')\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, np.stack([c.decode(open("
        f"{str(tmp_path)!r} + f'/{{i}}.spic', 'rb').read()) for i in range(6)]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
    decoded = np.load(tmp_path / "out.npy")
    for i, r in enumerate(results):
        assert np.array_equal(decoded[i], r.reconstruction), f"quality {i + 1}"


V1_FILES = sorted((REPO / "tests" / "data" / "v1").glob("*.spic"))


@pytest.mark.parametrize("path", V1_FILES, ids=lambda p: p.name)
def test_version_1_files_decode_to_the_same_pixels(path, tmp_path):
    """Files made before the codec-neutral frame (format version 1, committed with
    the PNG their decoder produced then) still decode to exactly those pixels,
    through the codec-neutral API and the CLI."""
    from click.testing import CliRunner

    from segpic_codec import codecs
    from segpic_codec.cli import main

    expected = load_image(path.with_name(path.stem + ".decoded.png")).pixels
    data = path.read_bytes()
    assert data[4] == 1
    assert np.array_equal(codecs.decode(data, device="cpu"), expected)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["decode", str(path), str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(load_image(out).pixels, expected)

"""The shipped weights on a real photo: loads, every quality decodes in a fresh
process within one level (float32 synthesis) or bit-exactly (float64), and rate
grows with quality."""

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


def _decode_in_fresh_process(paths: list, out, exact: bool, threads: int = 1) -> np.ndarray:
    code = (
        "import sys, numpy as np\n"
        "from segpic_codec.segpic.codec import Codec\n"
        "c = Codec.load(device='cpu')\n"
        "np.save(sys.argv[1], np.stack([c.decode(open(p, 'rb').read()) for p in sys.argv[2:]]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads),
               SEGPIC_EXACT="1" if exact else "0")
    subprocess.run([sys.executable, "-c", code, str(out), *map(str, paths)], check=True,
                   env=env, timeout=600)
    return np.load(out)


@pytest.mark.skipif(not KODAK.is_dir(), reason="../shared/data/kodak not present")
def test_kodak_image_every_quality_within_one_level(tmp_path):
    """The default float32 synthesis: at every quality a one-thread decode in a fresh
    process is within one level of the encoder's (multi-thread) reconstruction, in
    a small share of the values; rates grow with quality."""
    codec = Codec.load(device="cpu", exact=False)
    pixels = load_image(KODAK / "kodim23.png").pixels[:256, :384]
    results = [codec.encode(pixels, quality=q) for q in range(1, 7)]
    sizes = [len(r.data) for r in results]
    assert sizes == sorted(sizes), sizes
    paths = []
    for i, r in enumerate(results):
        paths.append(tmp_path / f"{i}.spic")
        paths[-1].write_bytes(r.data)
    decoded = _decode_in_fresh_process(paths, tmp_path / "out.npy", exact=False)
    for i, r in enumerate(results):
        diff = np.abs(decoded[i].astype(np.int16) - r.reconstruction.astype(np.int16))
        assert diff.max() <= 1, f"quality {i + 1}"
        assert np.mean(diff) < 0.01, f"quality {i + 1}"


@pytest.mark.skipif(not KODAK.is_dir(), reason="../shared/data/kodak not present")
def test_kodak_image_exact_synthesis_bit_exact(tmp_path):
    """SEGPIC_EXACT=1 / exact=True (float64 synthesis): a one-thread decode in a
    fresh process equals the encoder's reconstruction bit for bit."""
    codec = Codec.load(device="cpu", exact=True)
    pixels = load_image(KODAK / "kodim23.png").pixels[:256, :384]
    results = [codec.encode(pixels, quality=q) for q in (1, 6)]
    paths = []
    for i, r in enumerate(results):
        paths.append(tmp_path / f"{i}.spic")
        paths[-1].write_bytes(r.data)
    decoded = _decode_in_fresh_process(paths, tmp_path / "out.npy", exact=True)
    for i, r in enumerate(results):
        assert np.array_equal(decoded[i], r.reconstruction), i


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
    assert np.array_equal(codecs.decode(data, device="cpu", exact=True), expected)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["decode", str(path), str(out), "--device", "cpu"],
                                env={"SEGPIC_EXACT": "1"})
    assert result.exit_code == 0, result.output
    assert np.array_equal(load_image(out).pixels, expected)
    # the default float32 synthesis: within one level
    fast = codecs.decode(data, device="cpu").astype(np.int16)
    assert np.abs(fast - expected).max() <= 1


def test_loaded_codec_codes_only():
    """Codec.load builds the exact entropy path at once (what new files use),
    leaves the float64 path of older files to their first decode, and refuses to
    run the network's training forward or to rebuild its coding state."""
    import torch

    codec = Codec.load(device="cpu")
    net = codec.model
    assert set(net._coding().paths) == {True}
    with pytest.raises(RuntimeError, match="coding only"):
        net(torch.zeros(1, 3, 64, 64), 0.0)
    net.invalidate_coding_state()
    with pytest.raises(RuntimeError, match="coding only"):
        net._coding()

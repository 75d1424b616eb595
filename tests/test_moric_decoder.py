"""MoRIC's numpy decoder: integer synthesis (exact, the same pixels on every
machine), the float path of older files, layered decoding, no torch."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segpic_codec import container
from segpic_codec.entropy import exact_math
from segpic_codec.moric import codec, layout
from segpic_codec.moric.bitstream.arm_integer import IntegerArm
from segpic_codec.moric.bitstream.canvas import Canvas
from segpic_codec.moric.bitstream.latent_stream import decode_latents
from segpic_codec.moric.bitstream.parameters import read_parameters
from segpic_codec.moric.decoder import blas, synthesis
from segpic_codec.moric.decoder.decode import decode, reconstruct, region_labels
from segpic_codec.moric.decoder.layers import ACT_LIMIT, IntegerArithmetic
from segpic_codec.moric.errors import MoricFormatError
from segpic_codec.segpic.networks.fixed_point import gelu_table

REPO = Path(__file__).resolve().parent.parent
# written with integer synthesis (and parameters coded against the network
# prior) by the encoder: codec.encode(crop, quality=5.0,
# steps=100, seed=0) of examples/parrots.png's crops [104:144, 208:256] with
# regions="auto", and [56:92, 248:292] with roi = the disc of radius 13 about
# its centre; the .decoded.png beside each is the encoder's reconstruction
FILES = REPO / "tests" / "data" / "moric-v3"
OLD_FILES = REPO / "tests" / "data" / "moric-v1"  # float synthesis


def _read(path: Path) -> tuple[container.FrameHeader, list[bytes]]:
    data = path.read_bytes()
    frame = container.read_frame(data)
    return frame, container.split_streams(data, frame)


def _decode(path: Path, integer: bool | None = None, regions: set[int] | None = None,
            activation: str | None = None) -> np.ndarray:
    """Decode a file, with its integer-synthesis flag set or cleared if asked;
    `activation`: its networks (read as the file says) run with this one."""
    frame, streams = _read(path)
    header = layout.unpack(frame.payload)
    if integer is not None:
        header = dataclasses.replace(header, integer_synthesis=integer)
    if activation is None:
        return decode(layout.pack(header), streams, frame.width, frame.height, regions)
    labels = region_labels(header, streams, frame.width, frame.height)
    canvas = Canvas(frame.height, frame.width)
    integers = read_parameters(header, streams[0])
    flat = decode_latents(IntegerArm(integers["arm"]), streams[header.latent_streams], canvas,
                          header.latent_low, header.latent_high)
    return reconstruct(dataclasses.replace(header, activation=activation), integers, flat,
                       labels)


@pytest.mark.parametrize("name", ["parrots-48x40-auto", "parrots-44x36-object"])
def test_integer_files_decode_to_their_pixels(name):
    """The pixels the encoder reported when it wrote the file (on another day,
    maybe another machine): exact arithmetic makes them the same everywhere."""
    path = FILES / f"{name}.spic"
    assert layout.unpack(_read(path)[0].payload).integer_synthesis
    expected = np.asarray(Image.open(path.with_name(f"{name}.decoded.png")))
    np.testing.assert_array_equal(_decode(path), expected)


def test_integer_synthesis_does_not_depend_on_the_bands(monkeypatch):
    path = FILES / "parrots-48x40-auto.spic"
    whole = _decode(path)
    monkeypatch.setattr(synthesis, "BAND_PIXELS", 48 * 5)  # 8 bands, halos cut inside
    np.testing.assert_array_equal(_decode(path), whole)
    assert len(synthesis.bands(0, 40, 40, 48)) == 8


def test_integer_synthesis_does_not_depend_on_blas_threads(monkeypatch):
    """The decoder runs one OpenBLAS thread for speed; the sums are exact, so
    with two (any split of the products) the pixels are the same."""
    import contextlib

    from segpic_codec.moric.decoder import decode as decode_module

    found = blas._openblas()
    if found is None:
        pytest.skip("no OpenBLAS found under numpy")
    setter, getter = found
    # a Kodak-size file: bands of 2^14 pixels, products large enough to split
    path = REPO / "bench" / "results" / "moric-integer" / "files" / \
        "kodim01-q2.5-3000-none-integer.spic"
    expected = _decode(path)
    monkeypatch.setattr(decode_module, "one_blas_thread", contextlib.nullcontext)
    previous = getter()
    setter(2)
    try:
        np.testing.assert_array_equal(_decode(path), expected)
    finally:
        setter(previous)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_integer_and_float_synthesis_are_close(activation):
    """The same file decoded both ways (and with the header's other activation):
    the fixed point costs almost nothing."""
    path = FILES / "parrots-48x40-auto.spic"
    exact = _decode(path, activation=activation).astype(np.int64)
    floating = _decode(path, integer=False, activation=activation).astype(np.int64)
    assert np.abs(exact - floating).max() <= 2
    assert np.mean(exact != floating) < 0.05


def test_old_files_keep_the_float_path():
    """A file without the flag decodes as the PyTorch decoder did (its pixels
    were written by that decoder); with the flag set it decodes differently."""
    path = OLD_FILES / "parrots-40x32-auto.spic"
    assert not layout.unpack(_read(path)[0].payload).integer_synthesis
    expected = np.asarray(Image.open(path.with_name("parrots-40x32-auto.decoded.png")))
    np.testing.assert_array_equal(_decode(path), expected)
    assert not np.array_equal(_decode(path, integer=True), expected)


def test_layered_decoding_draws_the_regions_exactly():
    path = FILES / "parrots-48x40-auto.spic"
    frame, streams = _read(path)
    labels = region_labels(layout.unpack(frame.payload), streams, frame.width, frame.height)
    full = _decode(path)
    layer = _decode(path, regions={1})
    assert layer.shape == (40, 48, 4)
    inside = labels == 1
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(layer[..., 3], inside * 255)
    np.testing.assert_array_equal(layer[inside][:, :3], full[inside])
    assert not layer[~inside].any()


def test_gelu_table_is_the_shared_one():
    """The decoder's GELU gives what SegPIC's exact networks' table gives, over
    the table, beyond its ends, and up to the activations' limit."""
    ar = IntegerArithmetic("gelu")
    one = 1 << 16
    ends = [-ACT_LIMIT, ACT_LIMIT, 12.5 * one, 3 * one]
    # every activation around the decoder's table (GELU_RANGE) and its ends
    a = np.floor(np.concatenate([np.arange(-9 * one, 9 * one, 37),
                                 np.arange(-6 * one, 6 * one), ends]))
    layer = ar.layer((np.ones((1, 1), np.int64), 0), (np.zeros(1, np.int64), 16))
    # the layer adds its bias' offset (the table's first index) to the sum
    mine = ar.finish(a[None, :] + layer.bias, layer, True)[0]
    theirs = gelu_table()(torch.from_numpy(a)).numpy()
    np.testing.assert_array_equal(mine, theirs)
    assert abs(mine[a == 3 * one][0] / one - float(exact_math.gelu(3.0))) < 2.0 / one


def test_parameters_beyond_exact_sums_are_refused():
    ar = IntegerArithmetic("gelu")
    with pytest.raises(MoricFormatError, match="too large"):
        ar.layer((np.full((3, 40), 1 << 22, np.int64), 0), None)


def test_one_blas_thread_is_restored():
    found = blas._openblas()
    if found is None:
        pytest.skip("no OpenBLAS found under numpy")
    setter, getter = found
    before = getter()
    with blas.one_blas_thread():
        assert getter() == 1
        with blas.one_blas_thread():
            assert getter() == 1
        assert getter() == 1
    assert getter() == before


def test_encoder_reports_the_integer_decoders_pixels():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    enc = codec.encode(pixels, quality=4.0, steps=3, regions="none")
    assert layout.unpack(enc.payload).integer_synthesis
    np.testing.assert_array_equal(decode(enc.payload, enc.streams, 30, 24), enc.reconstruction)


def test_decode_info_and_pillow_import_no_torch(tmp_path):
    """`segpic decode`, `segpic info` and Pillow's load() of MoRIC files, old and
    new, in a fresh process: torch is never imported."""
    files = [FILES / "parrots-48x40-auto.spic", FILES / "parrots-44x36-object.spic",
             OLD_FILES / "parrots-40x32-auto.spic"]
    code = ("import sys\nfrom segpic_codec.cli import main\nimport segpic_codec.pillow\n"
            "from PIL import Image\n"
            "def run(*args):\n    sys.argv = ['segpic', *args]\n    try:\n        main()\n"
            "    except SystemExit as e:\n        assert not e.code, e.code\n")
    for i, path in enumerate(files):
        code += (f"run('decode', {str(path)!r}, {str(tmp_path / f'{i}.png')!r})\n"
                 f"run('info', {str(path)!r})\n"
                 f"with Image.open({str(path)!r}) as im:\n    im.load()\n")
    # (safetensors, without torch, reads the network prior of prior-coded files)
    code += ("heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'skimage', 'scipy'))\nassert not heavy, heavy\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = np.asarray(Image.open(FILES / "parrots-48x40-auto.decoded.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "0.png")), expected)

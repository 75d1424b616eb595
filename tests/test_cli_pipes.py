"""`-` for standard input and output, and the image formats `decode` writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image

from segpic_codec.cli import main


def run(*args, input: bytes | None = None, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, env=env)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A PNG with an ICC profile and EXIF, to follow the metadata."""
    from PIL import ImageCms

    path = tmp_path_factory.mktemp("pipes") / "photo.png"
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(random_image(40, 56, seed=2)).save(path, icc_profile=icc,
                                                       exif=exif.tobytes())
    return path


@pytest.fixture(scope="module")
def spic(photo, tiny_weights, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipes") / "photo.spic"
    r = run("encode", photo, path, "--weights", tiny_weights, "-q", "3")
    assert r.exit_code == 0, r.output
    return path


def test_encode_info_decode_through_pipes(photo, spic, tiny_weights, tmp_path):
    r = run("encode", "-", "-", "--weights", tiny_weights, "-q", "3",
            input=photo.read_bytes())
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == spic.read_bytes()  # the same file as from a path
    assert "<stdin> -> <stdout>" in r.stderr  # the summary stays off the data
    r = run("info", "-", "--json", input=spic.read_bytes())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["file"] == "<stdin>"
    r = run("decode", "-", "-", "--weights", tiny_weights, input=spic.read_bytes())
    assert r.exit_code == 0, r.output
    piped = Image.open(io.BytesIO(r.stdout_bytes))
    assert piped.format == "PNG" and "icc_profile" in piped.info
    assert run("decode", spic, tmp_path / "a.png", "--weights", tiny_weights).exit_code == 0
    assert np.array_equal(np.asarray(piped), np.asarray(Image.open(tmp_path / "a.png")))
    assert not Path("-").exists()  # no file named "-"
    r = run("decode", "-", "-", "--format", "ppm", "--weights", tiny_weights,
            input=spic.read_bytes())
    assert r.exit_code == 0 and r.stdout_bytes[:2] == b"P6"


@pytest.mark.parametrize("args,message", [
    (("encode", "-", "OUT"), "empty input"),
    (("decode", "-", "OUT"), "empty input"),
    (("info", "-"), "empty input"),
])
def test_empty_stdin(tmp_path, tiny_weights, args, message):
    args = [tmp_path / "x.png" if a == "OUT" else a for a in args]
    r = run(*args, input=b"")
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_pipes_are_bounded_like_files(tmp_path):
    # SEGPIC_MAX_PIXELS bounds a pipe as it bounds a file: 1000 pixels allow
    # 3 MiB of .spic input and a little over 6 MiB of image input
    env = {"SEGPIC_MAX_PIXELS": "1000"}
    big = b"SPIC" + bytes(4 << 20)
    r = run("info", "-", input=big, env=env)
    assert r.exit_code == 2 and "too large to be a .spic file" in r.stderr
    r = run("encode", "-", tmp_path / "a.spic", input=b"\x89PNG" + bytes(8 << 20), env=env)
    assert r.exit_code == 2 and "too large to be an image" in r.stderr
    assert not (tmp_path / "a.spic").exists()
    r = run("encode", "-", tmp_path / "a.spic", input=b"not an image")
    assert r.exit_code == 2 and "<stdin>: not an image file" in r.stderr


FORMATS = [("a.png", "PNG", True), ("a.jpg", "JPEG", False), ("a.jpeg", "JPEG", False),
           ("a.webp", "WEBP", True), ("a.tif", "TIFF", True), ("a.TIFF", "TIFF", True),
           ("a.ppm", "PPM", True)]


@pytest.mark.parametrize("name,pillow,lossless", FORMATS)
def test_decode_writes_the_format_its_extension_names(spic, tiny_weights, tmp_path, name,
                                                      pillow, lossless):
    reference = tmp_path / "ref.png"
    assert run("decode", spic, reference, "--weights", tiny_weights).exit_code == 0
    r = run("decode", spic, tmp_path / name, "--weights", tiny_weights)
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / name)
    assert out.format == pillow
    pixels, expected = np.asarray(out.convert("RGB")), np.asarray(Image.open(reference))
    if lossless:
        assert np.array_equal(pixels, expected)
    else:
        assert np.abs(pixels.astype(int) - expected).mean() < 3
    if pillow == "PPM":  # no metadata there: said, not silently lost
        assert "PPM holds no metadata: ICC profile, EXIF left out" in r.stderr
    else:
        assert out.info.get("icc_profile") and out.getexif().get(0x010F) == "Camera"


def test_jpeg_quality_webp_quality_and_format(spic, tiny_weights, tmp_path):
    sizes = {}
    for q in (30, 95):
        r = run("decode", spic, tmp_path / f"q{q}.jpg", "--jpeg-quality", q,
                "--weights", tiny_weights)
        assert r.exit_code == 0, r.output
        sizes[q] = (tmp_path / f"q{q}.jpg").stat().st_size
    assert sizes[30] < sizes[95]
    r = run("decode", spic, tmp_path / "lossy.webp", "--webp-quality", "50",
            "--weights", tiny_weights)
    assert r.exit_code == 0 and Image.open(tmp_path / "lossy.webp").format == "WEBP"
    # --format wins over the extension
    r = run("decode", spic, tmp_path / "named.png", "--format", "jpeg", "--weights",
            tiny_weights)
    assert r.exit_code == 0 and Image.open(tmp_path / "named.png").format == "JPEG"
    r = run("decode", spic, tmp_path / "q.jpg", "--jpeg-quality", "0")
    assert r.exit_code == 2


@pytest.mark.parametrize("name", ["out.xyz", "out", "out.spic", "out.gif"])
def test_unknown_extension_refused_before_decoding(spic, tmp_path, name):
    r = run("decode", spic, tmp_path / name)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and ".png, .jpg, .jpeg, .webp, .tif, .tiff, .ppm" in r.stderr
    assert not (tmp_path / name).exists()


def test_strip_drops_metadata_in_every_format(spic, tiny_weights, tmp_path):
    r = run("decode", spic, tmp_path / "a.jpg", "--strip", "--weights", tiny_weights)
    assert r.exit_code == 0
    out = Image.open(tmp_path / "a.jpg")
    assert not out.info.get("icc_profile") and not out.info.get("exif")


def test_batch_decode_format(spic, tiny_weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.spic").write_bytes(spic.read_bytes())
    r = run("batch", src, tmp_path / "out", "--decode", "--format", "webp",
            "--weights", tiny_weights)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out" / "a.webp").format == "WEBP"


def test_batch_options_of_the_other_direction_refused(tmp_path):
    (tmp_path / "in").mkdir()
    r = run("batch", tmp_path / "in", tmp_path / "out", "--format", "jpeg")
    assert r.exit_code == 2 and "--format and --webp-quality apply to --decode" in r.stderr
    r = run("batch", tmp_path / "in", tmp_path / "out", "--decode", "--size", "4k")
    assert r.exit_code == 2 and "apply to encoding" in r.stderr
    assert not (tmp_path / "out").exists()

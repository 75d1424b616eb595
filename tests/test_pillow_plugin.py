"""The Pillow plugin (segpic_codec.pillow) through Pillow's own API, with the
shipped weights on small crops (the plugin keeps each model loaded once)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import EXAMPLE, REPO, SHIPPED
from PIL import Image, ImageFile, UnidentifiedImageError

import segpic_codec.pillow as plugin
from segpic_codec import container
from segpic_codec.quality_metrics import psnr_rgb

pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped weights not present")
V1_FILES = sorted((REPO / "tests" / "data" / "v1").glob("*.spic"))


@pytest.fixture(scope="module")
def original() -> Image.Image:
    with Image.open(EXAMPLE) as im:
        return im.convert("RGB").crop((100, 60, 164, 124))  # 64x64, with detail


@pytest.fixture(scope="module")
def spic_path(original, tmp_path_factory):
    path = tmp_path_factory.mktemp("pillow") / "parrots.spic"
    original.save(path, quality=4, codec="segpic")
    return path


def test_registered_once_with_extension_and_mime():
    plugin.register()
    plugin.register()
    assert Image.ID.count("SPIC") == 1
    assert Image.registered_extensions()[".spic"] == "SPIC"
    assert Image.MIME["SPIC"] == "image/x-spic"
    assert plugin._accept(b"SPIC\x02\x01") and not plugin._accept(b"\x89PNG\r\n")


def test_open_reads_the_header_without_decoding(spic_path, monkeypatch):
    calls = []
    monkeypatch.setattr(plugin, "_decode", lambda data: calls.append(data))
    with Image.open(spic_path) as im:
        assert (im.format, im.size, im.mode) == ("SPIC", (64, 64), "RGB")
        assert im.info["codec"] == "segpic"
        assert im.get_format_mimetype() == "image/x-spic"
        assert im.tile  # still pending: load() has not run
    assert calls == []


def test_import_and_open_need_no_torch(spic_path):
    code = ("import sys\nimport segpic_codec.pillow\nfrom PIL import Image\n"
            f"im = Image.open({str(spic_path)!r})\nprint(im.size)\nim.verify()\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(64, 64)"


def test_load_decodes_close_to_the_original(spic_path, original):
    with Image.open(spic_path) as im:
        im.load()
        assert not im.tile
        assert im.size == (64, 64) and im.mode == "RGB"
        assert psnr_rgb(im, original) > 28


def test_verify_thumbnail_convert(spic_path):
    with Image.open(spic_path) as im:
        im.verify()
    with Image.open(spic_path) as im:
        im.thumbnail((32, 24))
        assert im.size == (24, 24) and im.mode == "RGB"
    with Image.open(spic_path) as im:
        gray = im.convert("L")
        assert gray.size == (64, 64) and gray.mode == "L"


def test_file_objects_and_format_argument(original):
    buf = io.BytesIO()
    original.save(buf, format="SPIC", quality=2)
    low = buf.getvalue()
    assert low[:4] == b"SPIC"
    with Image.open(io.BytesIO(low), formats=["SPIC"]) as im:
        assert psnr_rgb(im, original) > 22
    buf = io.BytesIO()
    original.save(buf, format="spic", quality=6)
    assert len(buf.getvalue()) > len(low)  # the quality option reaches the codec


def test_incremental_parser(spic_path):
    parser = ImageFile.Parser()
    data = spic_path.read_bytes()
    for i in range(0, len(data), 50):
        parser.feed(data[i : i + 50])
    im = parser.close()
    assert im.size == (64, 64)
    with Image.open(spic_path) as whole:
        assert np.array_equal(np.asarray(im), np.asarray(whole))


@pytest.mark.parametrize("mode", ["RGBA", "L", "P"])
def test_save_converts_modes_to_rgb(original, mode, tmp_path):
    # an adaptive palette: the default web palette's dithering is noise to any codec
    src = original.quantize(64) if mode == "P" else original.convert(mode)
    if mode == "RGBA":
        src.putalpha(128)  # dropped, as `segpic encode` drops it
    src.save(tmp_path / "x.spic", quality=4)
    with Image.open(tmp_path / "x.spic") as im:
        assert im.mode == "RGB" and im.size == src.size
        assert psnr_rgb(im, src.convert("RGB")) > 26


def test_save_refuses_bad_requests(original, tmp_path):
    with pytest.raises(ValueError, match="unknown codec 'jpeg'"):
        original.save(tmp_path / "a.spic", codec="jpeg")
    with pytest.raises(ValueError, match="quality"):
        original.save(tmp_path / "b.spic", quality=90)  # a JPEG habit, not our scale
    with pytest.raises(OSError, match="cannot write mode F as SPIC"):
        original.convert("F").save(tmp_path / "c.spic")
    assert not list(tmp_path.iterdir())  # Pillow removes what it created


def test_version_1_files_open(tmp_path):
    for path in V1_FILES:
        with Image.open(path) as im, Image.open(path.with_name(path.stem + ".decoded.png")) as ref:
            assert im.size == ref.size
            diff = np.asarray(im, dtype=np.int16) - np.asarray(ref.convert("RGB"), dtype=np.int16)
            assert np.abs(diff).max() <= 1, path.name  # float32 synthesis: within a level


def test_moric_save_and_open(original, tmp_path):
    small = original.crop((0, 0, 24, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 3-step budget must not be cut short
        small.save(tmp_path / "m.spic", codec="moric", quality=3, steps=3)
    with Image.open(tmp_path / "m.spic") as im:
        assert im.info["codec"] == "moric" and im.size == (24, 16)
        im.load()
        assert im.mode == "RGB" and np.asarray(im).shape == (16, 24, 3)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:-7], "truncated|do not add up|checksum"),
    (lambda d: d[:-9] + bytes([d[-9] ^ 0x10]) + d[-8:], "checksum mismatch"),  # a stream bit
    (lambda d: d[:6], "truncated .spic file"),
])
def test_broken_files_raise_with_our_message(spic_path, tmp_path, damage, message):
    bad = tmp_path / "bad.spic"
    bad.write_bytes(damage(spic_path.read_bytes()))
    with pytest.raises(UnidentifiedImageError, match=message) as info:
        Image.open(bad)
    assert "bad.spic" in str(info.value)
    assert isinstance(info.value.__cause__, container.ContainerError)


def test_bad_codec_header_fails_on_load_and_verify(tmp_path):
    # a sound frame whose SegPIC header names no model: open cannot tell (the frame
    # is codec-neutral), load and verify can
    path = tmp_path / "model.spic"
    path.write_bytes(container.pack("segpic", 8, 8, bytes([255]) + bytes(6), [bytes(4)]))
    with Image.open(path) as im:
        assert im.size == (8, 8)
        with pytest.raises(OSError, match="unknown model id 255"):
            im.load()
    with Image.open(path) as im, pytest.raises(OSError, match="unknown model id 255"):
        im.verify()


def test_other_files_are_not_claimed(original, tmp_path):
    png = tmp_path / "really-a-png.spic"
    original.save(png, format="PNG")
    with Image.open(png) as im:
        assert im.format == "PNG"
    with pytest.raises(UnidentifiedImageError):
        Image.open(png, formats=["SPIC"])
    junk = tmp_path / "junk.spic"
    junk.write_bytes(b"not an image at all" * 4)
    with pytest.raises(UnidentifiedImageError, match="cannot identify image file"):
        Image.open(junk)

"""Photo metadata: EXIF orientation applied before coding, ICC profile / EXIF /
XMP carried through .spic (frame version 3) into the decoded PNG, --strip, and
every malformed metadata box refused with a one-line error."""

from __future__ import annotations

import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from segpic_codec import container
from segpic_codec.cli import main
from segpic_codec.container import ContainerError
from segpic_codec.image_io import load_image
from segpic_codec.limits import MAX_METADATA_BOX, MAX_METADATA_TOTAL
from segpic_codec.metadata import exif_upright, xmp_upright

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
       '02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       'xmlns:dc="http://purl.org/dc/elements/1.1/" tiff:Orientation="{o}" '
       'dc:title="Möwe ☀"/></rdf:RDF></x:xmpmeta>')
H, W = 24, 40  # as stored in the file; orientation 6 shows it 40 high, 24 wide


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _exif(orientation: int | None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SegphoneMaker"  # Make
    exif[0x0131] = "segpic tests"  # Software
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


def _tiff(exif: Image.Exif) -> bytes:
    return exif.tobytes().removeprefix(b"Exif\x00\x00")


def _photo(path: Path, orientation: int | None = 6, xmp: bool = True) -> Path:
    """A JPEG (or PNG, by suffix) with an ICC profile, EXIF and XMP."""
    img = Image.fromarray(random_image(H, W, seed=5))
    options = {"icc_profile": ICC, "exif": _exif(orientation)}
    if path.suffix == ".png":
        if xmp:
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", XMP.format(o=orientation or 1))
            options["pnginfo"] = info
        img.save(path, **options)
    else:
        if xmp:
            options["xmp"] = XMP.format(o=orientation or 1).encode()
        img.save(path, quality=95, **options)
    return path


def _encode(tiny_weights, src: Path, dst: Path, *extra) -> str:
    r = run("encode", src, dst, "--weights", tiny_weights, "-q", "3", "--device", "cpu",
            *extra)
    assert r.exit_code == 0, r.output
    return r.stdout


def _decode(tiny_weights, src: Path, dst: Path, *extra) -> Image.Image:
    r = run("decode", src, dst, "--weights", tiny_weights, "--device", "cpu", *extra)
    assert r.exit_code == 0, r.output
    return Image.open(dst)


def _xmp_supported() -> bool:
    """Pillow writes XMP into JPEGs from version 11 on (the project needs >= 10)."""
    return int(Image.__version__.split(".")[0]) >= 11


# ------------------------------------------------------- orientation
def test_rotated_jpeg_is_coded_upright(tiny_weights, tmp_path):
    """Orientation 6 (a phone held upright): the pixels are turned before coding,
    so the file codes exactly the upright image, and the EXIF says 1. (The
    content is compared through the coded streams, equal to those of the upright
    image: the test model's random weights reconstruct nothing recognisable.)"""
    jpeg = _photo(tmp_path / "phone.jpg")
    stored = np.asarray(Image.open(jpeg).convert("RGB"))
    upright = np.rot90(stored, k=-1)  # orientation 6: turn 90 degrees clockwise
    loaded = load_image(jpeg)
    assert loaded.pixels.shape == (W, H, 3)
    assert np.array_equal(loaded.pixels, upright)

    reference = tmp_path / "upright.png"  # the same pixels, already upright, no metadata
    Image.fromarray(np.ascontiguousarray(upright)).save(reference)
    _encode(tiny_weights, jpeg, tmp_path / "a.spic")
    _encode(tiny_weights, reference, tmp_path / "b.spic")
    a, b = (tmp_path / "a.spic").read_bytes(), (tmp_path / "b.spic").read_bytes()
    frame, plain = container.read_frame(a), container.read_frame(b)
    assert (frame.width, frame.height) == (H, W)
    # the same coded image (so the same decoded pixels); only the metadata differs
    assert frame.payload == plain.payload
    assert container.split_streams(a, frame) == container.split_streams(b, plain)
    assert container.with_metadata(a, None) == b

    decoded = _decode(tiny_weights, tmp_path / "a.spic", tmp_path / "a.png")
    assert decoded.size == (H, W)  # PIL: (width, height), upright
    exif = decoded.getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == "SegphoneMaker"
    if _xmp_supported():
        assert 'tiff:Orientation="1"' in decoded.info["XML:com.adobe.xmp"]


@pytest.mark.parametrize("orientation,turn", [(3, lambda a: np.rot90(a, 2)),
                                              (8, lambda a: np.rot90(a, 1)),
                                              (2, lambda a: a[:, ::-1])])
def test_other_orientations(tmp_path, orientation, turn):
    jpeg = _photo(tmp_path / "p.jpg", orientation=orientation, xmp=False)
    stored = np.asarray(Image.open(jpeg).convert("RGB"))
    loaded = load_image(jpeg)
    assert np.array_equal(loaded.pixels, turn(stored))
    exif = Image.Exif()
    exif.load(b"Exif\x00\x00" + loaded.metadata["exif"])
    assert exif[0x0112] == 1


def test_exif_orientation_patched_in_place():
    """Only the orientation value changes: maker notes and offsets stay as written."""
    for orientation in (6, None):
        tiff = _tiff(_exif(orientation))
        patched = exif_upright(tiff)
        assert len(patched) == len(tiff)
        if orientation is None:
            assert patched == tiff
        else:
            assert sum(x != y for x, y in zip(patched, tiff, strict=True)) == 1
    big_endian = b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1,
                                                                     8, 0) + b"\0" * 4
    assert exif_upright(big_endian)[18:20] == b"\x00\x01"
    assert xmp_upright(b"<tiff:Orientation> 6 </tiff:Orientation>") == \
        b"<tiff:Orientation>1</tiff:Orientation>"


# ------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_metadata_survives_byte_for_byte(tiny_weights, tmp_path, suffix):
    src = _photo(tmp_path / f"in{suffix}", orientation=None)
    with_xmp = suffix == ".png" or _xmp_supported()
    out = _encode(tiny_weights, src, tmp_path / "a.spic")
    assert "bytes of metadata: icc, exif" in out
    frame = container.read_frame((tmp_path / "a.spic").read_bytes())
    assert frame.version == container.METADATA_VERSION
    assert frame.metadata["icc"] == ICC
    assert frame.metadata["exif"] == _tiff(_exif(None))
    decoded = _decode(tiny_weights, tmp_path / "a.spic", tmp_path / "out.png")
    assert decoded.info["icc_profile"] == ICC
    assert decoded.info["exif"] == b"Exif\x00\x00" + _tiff(_exif(None))
    if with_xmp:
        assert decoded.info["XML:com.adobe.xmp"] == XMP.format(o=1)
    # and again from the decoded PNG: nothing is lost or added on a second trip
    _encode(tiny_weights, tmp_path / "out.png", tmp_path / "b.spic")
    again = container.read_frame((tmp_path / "b.spic").read_bytes())
    assert again.metadata == frame.metadata


def test_strip_drops_metadata_but_keeps_orientation(tiny_weights, tmp_path):
    jpeg = _photo(tmp_path / "phone.jpg")
    out = _encode(tiny_weights, jpeg, tmp_path / "s.spic", "--strip")
    assert "bytes of metadata" not in out
    data = (tmp_path / "s.spic").read_bytes()
    assert data[4] == container.VERSION == 2
    assert container.read_frame(data).metadata == {}
    decoded = _decode(tiny_weights, tmp_path / "s.spic", tmp_path / "s.png")
    assert decoded.size == (H, W)  # upright all the same
    assert not {"icc_profile", "exif", "XML:com.adobe.xmp"} & set(decoded.info)
    # decode --strip leaves a file's metadata out of the PNG
    _encode(tiny_weights, jpeg, tmp_path / "m.spic")
    decoded = _decode(tiny_weights, tmp_path / "m.spic", tmp_path / "m.png", "--strip")
    assert not {"icc_profile", "exif", "XML:com.adobe.xmp"} & set(decoded.info)


def test_batch_keeps_and_strips(tiny_weights, tmp_path):
    (tmp_path / "in").mkdir()
    _photo(tmp_path / "in" / "phone.jpg")
    for flags, folder in (((), "kept"), (("--strip",), "stripped")):
        r = run("batch", tmp_path / "in", tmp_path / folder, "--weights", tiny_weights,
                "--device", "cpu", *flags)
        assert r.exit_code == 0, r.output
    kept = container.read_frame((tmp_path / "kept" / "phone.spic").read_bytes())
    assert set(kept.metadata) >= {"icc", "exif"}
    assert container.read_frame((tmp_path / "stripped" / "phone.spic").read_bytes()
                                ).metadata == {}
    r = run("batch", tmp_path / "kept", tmp_path / "png", "--decode", "--weights",
            tiny_weights, "--device", "cpu")
    assert r.exit_code == 0, r.output
    png = Image.open(tmp_path / "png" / "phone.png")
    assert png.info["icc_profile"] == ICC and png.size == (H, W)


def test_files_without_metadata_stay_version_2(tiny_weights, tmp_path):
    src = tmp_path / "plain.png"
    Image.fromarray(random_image(H, W, seed=3)).save(src)
    _encode(tiny_weights, src, tmp_path / "a.spic")
    data = (tmp_path / "a.spic").read_bytes()
    assert data[4] == 2
    assert container.with_metadata(data, {}) == data
    assert container.with_metadata(container.with_metadata(data, {"xmp": b"<x/>"}), None) == data


def test_info_lists_metadata(tiny_weights, tmp_path):
    _encode(tiny_weights, _photo(tmp_path / "p.png", orientation=None), tmp_path / "a.spic")
    r = run("info", tmp_path / "a.spic", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    sizes = {m["kind"]: m["bytes"] for m in info["metadata"]}
    assert sizes == {"icc": len(ICC), "exif": len(_tiff(_exif(None))),
                     "xmp": len(XMP.format(o=1).encode())}
    assert info["format_version"] == 3
    r = run("info", tmp_path / "a.spic")
    assert r.exit_code == 0 and "metadata icc" in r.stdout and f"{len(ICC)} B" in r.stdout


# ------------------------------------------------ bad metadata in an input image
def test_oversized_or_broken_input_metadata_is_dropped_with_a_warning(tiny_weights, tmp_path):
    jpeg = tmp_path / "big.jpg"
    icc = b"\x07" * (MAX_METADATA_BOX + 1)  # Pillow splits it over APP2 markers
    Image.fromarray(random_image(H, W)).save(jpeg, icc_profile=icc,
                                             exif=b"Exif\x00\x00not a TIFF structure")
    assert Image.open(jpeg).info["icc_profile"] == icc
    r = run("encode", jpeg, tmp_path / "a.spic", "--weights", tiny_weights, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "ICC profile of 1048577 bytes is over the limit" in r.stderr
    assert "EXIF without a TIFF header" in r.stderr
    assert container.read_frame((tmp_path / "a.spic").read_bytes()).metadata == {}


# --------------------------------------------------- container level
STREAMS = [b"\x01\x02\x03\x04", b"", b"\x09" * 64]


def _frame(boxes: bytes) -> bytes:
    """A version-3 frame with a hand-made metadata section (count and boxes)."""
    body = (container.MAGIC + bytes([3, 2]) + container.varint(6) + container.varint(4)
            + container.varint(3) + b"abc" + boxes + container.varint(2 * 3 + 1)
            + container.varint(1) + container.varint(0) + b"".join(STREAMS))
    return body + struct.pack("<I", zlib.crc32(body))


def _box(kind: int, data: bytes, length: int | None = None) -> bytes:
    return bytes([kind]) + container.varint(len(data) if length is None else length) + data


TIFF = b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def test_container_metadata_roundtrip():
    metadata = {"xmp": "<x>é</x>".encode(), "icc": b"\x00ICC", "exif": TIFF}
    data = container.pack("moric", 7, 5, b"abc", STREAMS, metadata=metadata)
    assert data == _frame(container.varint(3) + _box(1, b"\x00ICC") + _box(2, TIFF)
                          + _box(3, "<x>é</x>".encode()))
    frame = container.read_frame(data)
    assert (frame.version, frame.codec, frame.width, frame.height) == (3, "moric", 7, 5)
    assert frame.metadata == metadata and list(frame.metadata) == ["icc", "exif", "xmp"]
    assert frame.payload == b"abc" and container.split_streams(data, frame) == STREAMS
    assert container.with_metadata(data, None) == container.pack("moric", 7, 5, b"abc",
                                                                 STREAMS)
    for cut in range(len(data)):  # every truncation
        with pytest.raises(ContainerError):
            container.read_frame(data[:cut])
    for i in range(len(data)):  # every byte, metadata included, is under the CRC
        broken = bytearray(data)
        broken[i] ^= 0x20
        with pytest.raises(ContainerError):
            container.read_frame(bytes(broken))


BIG = b"\x00" * MAX_METADATA_BOX
MALFORMED = {
    "no boxes": (container.varint(0), "0 metadata boxes"),
    "too many boxes": (container.varint(4), "4 metadata boxes"),
    "unknown kind": (container.varint(1) + _box(9, b"x"), "unknown metadata box kind 9"),
    "repeated": (container.varint(2) + _box(1, b"a") + _box(1, b"b"), "repeated or out of"),
    "out of order": (container.varint(2) + _box(3, b"a") + _box(1, b"b"), "out of order"),
    "empty": (container.varint(1) + _box(1, b""), "empty ICC profile"),
    "huge length": (container.varint(1) + _box(1, b"abc", length=1 << 34), "at most"),
    "over per box": (container.varint(1) + _box(1, BIG + b"!"), "1048577-byte ICC"),
    "over total": (container.varint(3) + _box(1, BIG) + _box(2, TIFF + BIG[len(TIFF):])
                   + _box(3, BIG), "in all"),
    "longer than file": (container.varint(1) + _box(1, b"abc", length=500), "truncated"),
    "overlong length": (container.varint(1) + b"\x01" + b"\xff" * 6, "overlong"),
    "exif not tiff": (container.varint(1) + _box(2, b"Exif\x00\x00II*\x00"), "TIFF header"),
    "xmp not utf-8": (container.varint(1) + _box(3, b"<x>\xff</x>"), "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_metadata_boxes(name):
    boxes, message = MALFORMED[name]
    data = _frame(boxes)
    tracemalloc.start()
    with pytest.raises(ContainerError, match=message) as caught:
        container.read_frame(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "\n" not in str(caught.value)
    assert peak < len(data) + (1 << 20)  # nothing allocated from a declared size


def test_pack_refuses_bad_metadata():
    for metadata, message in [({"gps": b"x"}, "unknown metadata kind"),
                              ({"exif": b"JFIF"}, "TIFF header"),
                              ({"icc": BIG + b"!"}, "over the limit"),
                              ({"icc": BIG, "xmp": BIG, "exif": TIFF + BIG[len(TIFF):]}, "in all")]:
        with pytest.raises(ContainerError, match=message):
            container.pack("moric", 7, 5, b"", STREAMS, metadata=metadata)
    assert MAX_METADATA_TOTAL < 3 * MAX_METADATA_BOX


def test_future_version_names_the_newest_readable():
    data = bytearray(_frame(container.varint(1) + _box(1, b"icc")))
    data[4] = 4
    body = bytes(data[:-4])
    with pytest.raises(ContainerError, match="reads versions 1 to 3"):
        container.read_frame(body + struct.pack("<I", zlib.crc32(body)))


def test_bad_metadata_through_the_commands(tiny_weights, tmp_path):
    """A crafted file: one line, exit code 2, no PNG; odd but valid boxes decode."""
    src = tmp_path / "plain.png"
    Image.fromarray(random_image(H, W, seed=3)).save(src)
    _encode(tiny_weights, src, tmp_path / "a.spic")
    plain = (tmp_path / "a.spic").read_bytes()
    odd = container.with_metadata(plain, {"icc": b"\xff" * 7, "exif": b"MM\x00*garbage",
                                          "xmp": "☀".encode()})
    (tmp_path / "odd.spic").write_bytes(odd)
    png = _decode(tiny_weights, tmp_path / "odd.spic", tmp_path / "odd.png")
    assert png.info["icc_profile"] == b"\xff" * 7 and png.info["XML:com.adobe.xmp"] == "☀"
    # the box count of the odd file (right after the codec payload) set to 0
    frame = container.read_frame(odd)
    cut = 6 + sum(len(container.varint(v)) for v in (frame.width - 1, frame.height - 1,
                                                       len(frame.payload))) + len(frame.payload)
    assert odd[cut] == 3
    body = odd[:cut] + b"\x00" + odd[cut + 1:-4]
    (tmp_path / "bad.spic").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    for args in (("decode", tmp_path / "bad.spic", tmp_path / "bad.png"),
                 ("info", tmp_path / "bad.spic")):
        r = run(*args, "--weights", tiny_weights) if args[0] == "decode" else run(*args)
        assert r.exit_code == 2, r.output
        assert r.stderr.startswith("segpic: error:") and r.stderr.count("\n") == 1
        assert "0 metadata boxes" in r.stderr
    assert not (tmp_path / "bad.png").exists()

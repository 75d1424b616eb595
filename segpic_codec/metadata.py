"""Photo metadata (ICC profile, EXIF, XMP) between Pillow images and .spic files.

Reading: `turn_upright` applies the EXIF orientation to the pixels (a phone's
portrait JPEG is stored sideways with orientation 6), and `extract` takes the
metadata from what Pillow read, with the orientation set to 1 in the EXIF (and
XMP) so that no viewer turns the decoded image a second time. Writing:
`png_options` turns a file's metadata into the keyword arguments of Pillow's PNG
writer (iCCP, eXIf, and XMP as the iTXt chunk "XML:com.adobe.xmp").

The container (container.py) stores the boxes and checks them; this module only
decides what to keep. Nothing here imports torch.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from .container import METADATA_LABELS, metadata_problem
from .limits import MAX_METADATA_TOTAL

ORIENTATION_TAG = 0x0112
EXIF_PREFIX = b"Exif\x00\x00"  # JPEG's APP1 marker text; PNG's eXIf and our box omit it
XMP_KEYS = ("xmp", "XML:com.adobe.xmp")  # Pillow: JPEG/WebP/TIFF, PNG
XMP_PNG_KEY = "XML:com.adobe.xmp"
_XMP_ORIENTATION = (
    re.compile(rb"(tiff:Orientation\s*=\s*[\"'])\s*\d+\s*([\"'])"),
    re.compile(rb"(<tiff:Orientation>)\s*\d+\s*(</tiff:Orientation>)"),
)


def orientation(img: Image.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) when absent, invalid or unreadable."""
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not refuse the pixels
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def turn_upright(img: Image.Image) -> tuple[Image.Image, bool]:
    """(img as a viewer shows it, whether it was turned). Orientation 1 returns
    `img` itself: no copy of a large image for nothing."""
    if orientation(img) == 1:
        return img, False
    return ImageOps.exif_transpose(img), True


def exif_upright(tiff: bytes) -> bytes | None:
    """The EXIF (a TIFF structure) with orientation 1, or None if it cannot be
    changed. The value is overwritten in place, so every other byte (maker notes,
    thumbnails, offsets) stays as the camera wrote it; Pillow's rewrite of the
    whole structure is only the fallback."""
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd = struct.unpack_from(order + "I", tiff, 4)[0]
        count = struct.unpack_from(order + "H", tiff, ifd)[0]
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag != ORIENTATION_TAG:
                continue
            if kind != 3 or n != 1:  # not one SHORT: let Pillow rewrite it
                break
            out = bytearray(tiff)
            struct.pack_into(order + "H", out, entry + 8, 1)
            return bytes(out)
        else:
            return tiff  # no orientation tag: viewers already assume 1
    except struct.error:
        pass
    try:
        exif = Image.Exif()
        exif.load(EXIF_PREFIX + tiff)
        exif[ORIENTATION_TAG] = 1
        return exif.tobytes().removeprefix(EXIF_PREFIX)
    except Exception:  # noqa: BLE001 - Pillow fails in many ways on broken EXIF
        return None


def xmp_upright(xmp: bytes) -> bytes:
    """XMP with any tiff:Orientation set to 1 (some viewers read XMP's, not EXIF's)."""
    for pattern in _XMP_ORIENTATION:
        xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    return xmp


def extract(img: Image.Image, turned: bool) -> tuple[dict[str, bytes], list[str]]:
    """(the metadata to store: kind -> bytes, one line per box left out and why).
    `turned`: the pixels were turned upright, so the orientation becomes 1."""
    found: dict[str, bytes | None] = {}
    icc = img.info.get("icc_profile")
    if icc:
        found["icc"] = bytes(icc)
    exif = img.info.get("exif")
    if isinstance(exif, bytes | bytearray) and exif:
        tiff = bytes(exif).removeprefix(EXIF_PREFIX)
        found["exif"] = exif_upright(tiff) if turned and tiff[:2] in (b"II", b"MM") else tiff
    xmp = next((img.info[key] for key in XMP_KEYS if img.info.get(key)), None)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", errors="surrogateescape")
    if isinstance(xmp, bytes | bytearray):
        found["xmp"] = xmp_upright(bytes(xmp)) if turned else bytes(xmp)
    kept: dict[str, bytes] = {}
    dropped: list[str] = []
    total = 0
    for kind, data in found.items():
        label = METADATA_LABELS[kind]
        if data is None:
            problem = f"{label} whose orientation cannot be set to 1"
        else:
            problem = metadata_problem(kind, data)
            if problem is None and total + len(data) > MAX_METADATA_TOTAL:
                problem = (f"{label} of {len(data)} bytes would take the metadata over "
                           f"its limit of {MAX_METADATA_TOTAL} bytes")
        if problem:
            dropped.append(f"metadata dropped: {problem}")
            continue
        kept[kind] = data
        total += len(data)
    return kept, dropped


# zlib level of the PNGs segpic writes: on a decoded Kodak image level 3 makes
# the file 1 % larger than Pillow's default 6 in 0.4 times its time (0.05 against
# 0.13 s, `bench/results/moric-decode-speed/README.md`): a decode's output is
# usually viewed or converted, not archived
PNG_COMPRESS_LEVEL = 3


def png_options(metadata: Mapping[str, bytes]) -> dict[str, Any]:
    """Keyword arguments of `Image.save(..., format="PNG")` that write `metadata`,
    at zlib level PNG_COMPRESS_LEVEL."""
    options: dict[str, Any] = {"compress_level": PNG_COMPRESS_LEVEL}
    if "icc" in metadata:
        options["icc_profile"] = metadata["icc"]
    if "exif" in metadata:
        options["exif"] = metadata["exif"]  # eXIf holds the bare TIFF structure
    if "xmp" in metadata:
        info = PngInfo()
        # uncompressed, as the XMP specification asks, so that tools scanning the
        # file for the packet find it
        info.add_itxt(XMP_PNG_KEY, metadata["xmp"].decode("utf-8"), zip=False)
        options["pnginfo"] = info
    return options

"""The formats `segpic decode` writes: chosen by the output's extension (or
--format), each with the metadata it can hold. Pixels in, file bytes out; the
caller writes them (atomically, or to standard output).

    PNG   ICC profile, EXIF (eXIf), XMP (iTXt)       lossless
    JPEG  ICC profile, EXIF (APP1), XMP (APP1)       quality 95 by default
    WebP  ICC profile, EXIF, XMP                     lossless by default
    TIFF  ICC profile, EXIF, XMP (tag 700)           lossless
    PPM   none (binary P6)                           lossless
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .container import METADATA_LABELS
from .errors import SegpicError

if TYPE_CHECKING:  # Pillow and numpy load when an image is written: the command
    import numpy as np  # line declares its options from this module


DEFAULT_JPEG_QUALITY = 95


@dataclass(frozen=True)
class OutputFormat:
    name: str  # what --format takes
    pillow: str  # Pillow's format name
    extensions: tuple[str, ...]  # the first is the usual one
    metadata: tuple[str, ...]  # the boxes it holds (container kinds)
    alpha: bool  # holds an RGBA image (a layered MoRIC decode)


FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("png", "PNG", (".png",), ("icc", "exif", "xmp"), True),
    OutputFormat("jpeg", "JPEG", (".jpg", ".jpeg"), ("icc", "exif", "xmp"), False),
    OutputFormat("webp", "WEBP", (".webp",), ("icc", "exif", "xmp"), True),
    OutputFormat("tiff", "TIFF", (".tif", ".tiff"), ("icc", "exif", "xmp"), True),
    OutputFormat("ppm", "PPM", (".ppm",), (), False),
)}
BY_EXTENSION = {ext: f for f in FORMATS.values() for ext in f.extensions}
STDIO_FORMAT = "png"  # what `segpic decode in.spic -` writes unless --format says


class OutputFormatError(SegpicError, ValueError):
    """An output name or --format that names no format segpic writes."""


def known_extensions() -> str:
    return ", ".join(BY_EXTENSION)


def output_format(path: Path | None, override: str | None = None) -> OutputFormat:
    """The format to write: `override` (--format) if given, else the one `path`'s
    extension names (PNG for None: standard output). An unknown extension is an
    `OutputFormatError` listing the known ones, never PNG bytes under a .webp name."""
    if override is not None:
        if override.lower() not in FORMATS:
            raise OutputFormatError(f"unknown format {override!r}; choose one of: "
                                    f"{', '.join(FORMATS)}")
        return FORMATS[override.lower()]
    if path is None:
        return FORMATS[STDIO_FORMAT]
    suffix = path.suffix.lower()
    if suffix not in BY_EXTENSION:
        named = f"extension {suffix!r}" if suffix else "no extension"
        raise OutputFormatError(f"{path}: {named}; segpic writes {known_extensions()} "
                                "(or give --format)")
    return BY_EXTENSION[suffix]


def encode_image(pixels: np.ndarray, fmt: OutputFormat,
                 metadata: Mapping[str, bytes] | None = None,
                 jpeg_quality: int = DEFAULT_JPEG_QUALITY,
                 webp_quality: int | None = None) -> tuple[bytes, list[str]]:
    """(the file's bytes, notes: one line per thing the format could not hold).
    `webp_quality`: lossy WebP at that quality; None is lossless."""
    from PIL import Image
    metadata = dict(metadata or {})
    notes = []
    mode = "RGBA" if pixels.shape[-1] == 4 else "RGB"
    if mode == "RGBA" and not fmt.alpha:
        raise OutputFormatError(f"{fmt.name.upper()} has no transparency for a layered "
                                "decode (--region); write PNG, WebP or TIFF")
    left_out = [METADATA_LABELS[k] for k in metadata if k not in fmt.metadata]
    if left_out:
        notes.append(f"{fmt.name.upper()} holds no metadata: {', '.join(left_out)} left out")
    kept = {k: v for k, v in metadata.items() if k in fmt.metadata}
    options = _options(fmt, kept, jpeg_quality, webp_quality)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format=fmt.pillow, **options)
    return buf.getvalue(), notes


def _options(fmt: OutputFormat, metadata: dict[str, bytes], jpeg_quality: int,
             webp_quality: int | None) -> dict[str, Any]:
    from .metadata import EXIF_PREFIX, png_options

    if fmt.name == "png":
        return png_options(metadata)
    options: dict[str, Any] = {}
    if "icc" in metadata:
        options["icc_profile"] = metadata["icc"]
    if fmt.name == "tiff":
        # Pillow's TIFF writer takes XMP as tag 700; EXIF's tags join the main IFD
        if "xmp" in metadata:
            options["tiffinfo"] = {700: metadata["xmp"]}
        if "exif" in metadata:
            options["exif"] = metadata["exif"]
        options["compression"] = "tiff_deflate"
        return options
    if "xmp" in metadata:
        options["xmp"] = metadata["xmp"]
    if "exif" in metadata:
        # JPEG's APP1 segment starts "Exif\0\0"; WebP's EXIF chunk is the bare TIFF
        exif = metadata["exif"]
        options["exif"] = EXIF_PREFIX + exif if fmt.name == "jpeg" else exif
    if fmt.name == "jpeg":
        options.update(quality=jpeg_quality, subsampling=0 if jpeg_quality >= 90 else 2)
    elif fmt.name == "webp" and webp_quality is None:
        options.update(lossless=True, quality=100, method=4)
    elif fmt.name == "webp":
        options.update(quality=webp_quality)
    return options

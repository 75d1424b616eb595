"""Size limits shared by image input, the container and every codec.

The largest image (in pixels) segpic reads or decodes is checked before any
pixel or tensor is allocated. SEGPIC_MAX_PIXELS overrides it. SegPIC's decoder
peaks at about 0.2 GB per megapixel beyond torch's own 0.2 GB (1.5 GB for
3840x2160, `segpic bench speed memory`), so 25 MP (a 6000x4000 photo) stays within
about 5 GB.
"""

from __future__ import annotations

import os

DEFAULT_MAX_PIXELS = 25_000_000
MAX_DIMENSION = 1 << 16  # the longest side of any image, in pixels


def max_pixels() -> int:
    value = os.environ.get("SEGPIC_MAX_PIXELS")
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"SEGPIC_MAX_PIXELS must be a whole number, got {value!r}") from None
    if limit < 1:
        raise ValueError("SEGPIC_MAX_PIXELS must be positive")
    return limit


def format_pixels(count: int) -> str:
    """A pixel count for messages: "64.0 MP", or exact below one megapixel (a
    lowered SEGPIC_MAX_PIXELS would otherwise read "0.0 MP")."""
    return f"{count / 1e6:.1f} MP" if count >= 1_000_000 else f"{count} pixels"


def too_large(width: int, height: int) -> str | None:
    """The reason an image of this size is refused, or None if it is allowed."""
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > max_pixels():
        return (f"refusing {width}x{height} image: over the size limit "
                f"({format_pixels(max_pixels())}, sides up to {MAX_DIMENSION}; "
                "set SEGPIC_MAX_PIXELS to raise it)")
    return None


# Metadata carried beside the image (ICC profile, EXIF, XMP; container.py). The
# largest real ones are ICC profiles with big lookup tables (a few hundred KB) and
# XMP edit histories; a JPEG's EXIF is at most 64 KiB. A reader checks both before
# it allocates anything; an encoder drops (with a warning) what does not fit.
MAX_METADATA_BOX = 1 << 20  # bytes of one box
MAX_METADATA_TOTAL = 2 << 20  # bytes of all boxes of a file together


def max_spic_bytes() -> int:
    """The largest file read as a .spic file: far above any real one at 64 bpp, plus
    the most metadata a file may carry. A bigger (or endless) input is refused before
    it can fill the memory."""
    return 64 * max_pixels() // 8 + (1 << 20) + MAX_METADATA_TOTAL


def max_image_bytes() -> int:
    """The most bytes read from a pipe as one input image (`segpic encode -`). A
    file on disk is bounded by its pixel count alone, read from its header; a pipe
    must be held in memory first, so its size is bounded too: 8 bytes per pixel of
    `max_pixels()` (a 16-bit RGBA TIFF or PPM, uncompressed, the largest honest
    encoding) plus room for the metadata."""
    return 8 * max_pixels() + (4 << 20) + MAX_METADATA_TOTAL

"""Reading input images as 8-bit RGB and writing PNGs atomically."""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .config import max_pixels


class ImageError(ValueError):
    """An input image cannot be used."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8
    notes: list[str] = field(default_factory=list)  # conversions applied, one line each


def load_image(path: str | Path) -> LoadedImage:
    """Read an image as 8-bit RGB. Images over `max_pixels()` are refused from
    their header, before Pillow decodes any pixel (Pillow's own bomb check
    stays on as a second line)."""
    path = Path(path)
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > limit:
                    raise ImageError(
                        f"{path}: {w}x{h} is {w * h / 1e6:.1f} MP, over the limit of "
                        f"{limit / 1e6:.1f} MP (set SEGPIC_MAX_PIXELS to raise it)")
                if w < 1 or h < 1:
                    raise ImageError(f"{path}: image has no pixels")
                return _to_rgb8(img, path)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: refused as a decompression bomb") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{path}: broken or truncated image ({exc})") from None


def _to_rgb8(img: Image.Image, path: Path) -> LoadedImage:
    notes = []
    mode = img.mode
    if mode == "RGB":
        arr = np.asarray(img.convert("RGB"))
    elif mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        # 16-bit (or 32-bit integer) gray: scale to 8 bits by the format's range
        raw = np.asarray(img).astype(np.float64)
        scale = 255.0 / 65535.0 if raw.max(initial=0) > 255 or mode.startswith("I;16") else 1.0
        gray = np.clip(np.rint(raw * scale), 0, 255).astype(np.uint8)
        arr = np.repeat(gray[:, :, None], 3, axis=2)
        notes.append(f"{path.name}: {mode} gray image converted to 8-bit RGB")
    elif mode == "F":
        raise ImageError(f"{path}: floating-point images are not supported")
    else:
        has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info)
        arr = np.asarray(img.convert("RGB"))
        what = {"L": "gray", "P": "palette", "1": "bilevel", "CMYK": "CMYK",
                "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}.get(mode, mode)
        note = f"{path.name}: {what} image converted to 8-bit RGB"
        if has_alpha:
            note += " (alpha dropped)"
        notes.append(note)
    if arr.dtype != np.uint8:
        raise ImageError(f"{path}: unsupported pixel format {mode}")
    return LoadedImage(np.ascontiguousarray(arr), notes)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it, so an
    interrupted write never leaves a truncated file under the final name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_png(pixels: np.ndarray, path: str | Path) -> None:
    import io

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())

"""Input images: which files in a folder are images, reading one as 8-bit RGB; and
writing outputs (PNGs, .spic files) atomically with the mode a plain open() gives."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import metadata as photo_metadata
from .errors import SegpicError
from .limits import MAX_DIMENSION, format_pixels, max_pixels

# The files taken as input images where a folder is given (`segpic batch`, the
# bench, training sets), in any case: the formats Pillow reads that photos and
# test sets come in.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm"})


class ImageError(SegpicError, ValueError):
    """An input image cannot be used."""


def list_images(folder: str | Path) -> list[Path]:
    """The images directly in `folder`, sorted: regular files with one of
    IMAGE_SUFFIXES, hidden files (".name": temporary files, macOS's "._name") left
    out. Subfolders are not entered."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                  and p.is_file())


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) uint8, upright (EXIF orientation applied)
    notes: list[str] = field(default_factory=list)  # conversions applied, one line each
    # ICC profile, EXIF (orientation 1), XMP: kind -> bytes (metadata.py)
    metadata: dict[str, bytes] = field(default_factory=dict)


def load_image(path: str | Path, metadata: bool = True) -> LoadedImage:
    """Read an image as 8-bit RGB, turned upright by its EXIF orientation, with its
    metadata (ICC profile, EXIF, XMP; not with `metadata=False`). Images over
    `max_pixels()` or with a side over `MAX_DIMENSION` are refused from their
    header, before Pillow decodes any pixel (Pillow's own decompression-bomb check
    stays on as a second line). Every failure is an `ImageError` with a one-line
    message naming the file; metadata that cannot be kept is left out with a note."""
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ImageError(_open_message(path, exc)) from None
    with f:
        try:
            info = os.fstat(f.fileno())
            # only a regular file's size means anything (a pipe reports 0)
            empty = stat.S_ISREG(info.st_mode) and info.st_size == 0
        except OSError:
            empty = False
        return _load_from(f, path, empty, metadata)


def load_image_data(data: bytes, name: str = "<stdin>", metadata: bool = True) -> LoadedImage:
    """`load_image` for an image already in memory (read from a pipe, bounded by
    `limits.max_image_bytes`); `name` stands for the file in messages."""
    return _load_from(io.BufferedReader(io.BytesIO(data)), Path(name), not data, metadata)


def _load_from(f: io.BufferedReader, path: Path, empty: bool, metadata: bool) -> LoadedImage:
    limit = max_pixels()
    if empty:
        raise ImageError(f"{path}: empty file, not an image")
    # a .spic file is not an input image, even where segpic_codec.pillow has
    # taught Pillow to open it (peek: a pipe cannot seek back)
    if f.peek(4)[:4] == b"SPIC":
        raise ImageError(f"{path}: a .spic file, not an image (segpic decode turns it "
                         "into a PNG)")
    try:
        with warnings.catch_warnings():
            # Pillow warns above Image.MAX_IMAGE_PIXELS (~89 MP) and refuses
            # twice that. The warning becomes an error unless the user raised
            # SEGPIC_MAX_PIXELS above Pillow's limit on purpose.
            pillow_limit = Image.MAX_IMAGE_PIXELS
            if pillow_limit is None or limit <= pillow_limit:
                warnings.simplefilter("error", Image.DecompressionBombWarning)
            else:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                w, h = img.size
                if w < 1 or h < 1:
                    raise ImageError(f"{path}: image has no pixels ({w}x{h})")
                if w * h > limit:
                    raise ImageError(
                        f"{path}: {w}x{h} is {format_pixels(w * h)}, over the limit of "
                        f"{format_pixels(limit)} (set SEGPIC_MAX_PIXELS to raise it)")
                if w > MAX_DIMENSION or h > MAX_DIMENSION:
                    raise ImageError(f"{path}: {w}x{h} has a side over the limit of "
                                     f"{MAX_DIMENSION} pixels")
                img.load()  # a PNG's eXIf and XMP may follow its pixels
                upright, turned = photo_metadata.turn_upright(img)
                loaded = _to_rgb8(upright, path)
                if metadata:
                    loaded.metadata, dropped = photo_metadata.extract(img, turned)
                    loaded.notes += [f"{path.name}: {line}" for line in dropped]
                return loaded
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(_bomb_message(path, exc, limit)) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins fail in many ways
        # on hostile files (OSError, SyntaxError, struct.error, IndexError...)
        raise ImageError(f"{path}: broken or truncated image "
                         f"({type(exc).__name__}: {exc})") from None


def _open_message(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path}: {'broken symbolic link' if path.is_symlink() else 'no such file'}"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory, not an image"
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied"
    if exc.errno == errno.ELOOP:
        return f"{path}: symbolic link loop"
    return f"{path}: cannot open ({exc.strerror or exc})"


def _bomb_message(path: Path, exc: Exception, limit: int) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{format_pixels(int(found.group(1)))}, " if found else ""
    pillow = Image.MAX_IMAGE_PIXELS or limit
    # with SEGPIC_MAX_PIXELS above Pillow's limit only Pillow's hard error (at twice
    # its limit) remains; otherwise segpic's limit is the one that applies
    effective = limit if limit <= pillow else 2 * pillow
    return (f"{path}: refused as a possible decompression bomb ({size}over the limit of "
            f"{format_pixels(effective)}; SEGPIC_MAX_PIXELS sets segpic's limit, "
            f"Pillow's caps it at {format_pixels(2 * pillow)})")


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


# Temporary files of atomic writes: ".<final name>.<pid>.<8 random chars>.part" in
# the destination folder (a rename is only atomic within one file system). The
# pid lets `remove_stale_temp_files` tell the leftovers of a killed process from
# a write still in progress in another one.
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.part$")


def _with_path(exc: OSError, path: Path) -> OSError:
    """The same OS error, naming the file the user asked for, not the temp file."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


# the flags of tempfile.mkstemp: a new file (never an existing one or a link's
# target), not inherited by child processes
_TEMP_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _create_temp_file(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path`, open for writing: (fd, its path). Created
    with mode 0666 that the kernel reduces by the umask (and the folder's default
    ACL), as a plain open() does; mkstemp's 0600 would stay on the output after the
    rename, unreadable to anyone else."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it, so an
    interrupted write (Ctrl-C, kill, full disk) never leaves a truncated file under
    the final name. On failure the temporary file is removed (except after SIGKILL
    or power loss: see `remove_stale_temp_files`) and the OSError names `path`."""
    path = Path(path)
    try:
        fd, tmp = _create_temp_file(path)
    except OSError as exc:
        raise _with_path(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _with_path(exc, path) from None
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort, some file systems
    refuse to fsync a directory."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on POSIX; False elsewhere)."""
    if os.name != "posix":
        return False  # no safe probe (os.kill would terminate the process on Windows)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to someone else
    return True


def temp_file_parts(name: str) -> tuple[str, int] | None:
    """(the output's file name, the writing process's id) of a temporary file of
    `atomic_write_bytes`; None for any other name."""
    found = _TEMP_NAME.match(name)
    return (found.group("name"), int(found.group("pid"))) if found else None


def remove_stale_temp_files(folder: str | Path, suffixes: tuple[str, ...] = ()) -> list[Path]:
    """Delete the temporary files that `atomic_write_bytes` left under `folder`
    (recursively, symlinked folders not followed) when its process was killed
    (SIGKILL, power loss): files of its naming pattern whose process is gone, or
    is this one (the caller has no write in progress). With `suffixes`, only temp
    files of outputs with those suffixes. Returns the deleted paths."""
    removed = []
    own = os.getpid()
    for root, _dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            found = _TEMP_NAME.match(name)
            if not found or (suffixes and not found.group("name").lower().endswith(suffixes)):
                continue
            pid = int(found.group("pid"))
            if pid != own and pid_alive(pid):
                continue
            path = Path(root) / name
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed


def save_png(pixels: np.ndarray, path: str | Path,
             metadata: dict[str, bytes] | None = None) -> None:
    """Write a PNG atomically, with `metadata` (kind -> bytes, as in a .spic file)."""
    import io

    buf = io.BytesIO()
    # RGB, or RGBA for a layered decode (regions left out are transparent)
    Image.fromarray(pixels, mode="RGBA" if pixels.shape[-1] == 4 else "RGB").save(
        buf, format="PNG", **photo_metadata.png_options(metadata or {}))
    atomic_write_bytes(path, buf.getvalue())

"""A Pillow plugin for .spic files: `Image.open`, `load` and `save`, both codecs.

    import segpic_codec.pillow  # registers the "SPIC" format (or call register())
    from PIL import Image

    with Image.open("photo.spic") as im:  # size and mode from the header, no decoding
        im.thumbnail((256, 256))          # decodes here (load), any codec in the file
    im.save("small.spic", quality=4)      # SegPIC by default; codec="moric" for MoRIC

Opening reads the file (a few KB) and checks its frame and checksum
(`container.read_frame`), which needs neither torch nor weights; the codec runs
only on `load()`. Images open in mode "RGB". Pillow has no plugin discovery:
like Pillow's own plugins and pillow-heif, this one registers when imported.

Errors keep our one-line message: a file with the .spic magic but a broken or
truncated frame raises `PIL.UnidentifiedImageError` at open, a failure while
decoding an `OSError` at load, and `verify()` an `OSError` when the codec's own
header is bad; a bad save option (quality out of range, unknown codec) raises
`ValueError`.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageFile, UnidentifiedImageError

from . import container
from .errors import SegpicError
from .limits import max_spic_bytes
from .options import TARGETS

TARGET_OPTIONS = tuple(option.name for option in TARGETS)  # bpp, size, psnr, best_effort

FORMAT = "SPIC"
EXTENSION = ".spic"
MIME = "image/x-spic"

# ImageFile._Tile is a named tuple from Pillow 11 on; older Pillow takes a plain tuple
_tile = getattr(ImageFile, "_Tile", lambda *fields: fields)


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


def _read_file(fp: IO[bytes]) -> bytes:
    """The whole file (the checksum covers all of it), refusing one far larger
    than any real .spic file: a hostile file must not fill the memory."""
    limit = max_spic_bytes()  # the bound `segpic decode` uses
    data = fp.read(limit + 1)
    if len(data) > limit:
        raise container.ContainerError(f"more than {limit} bytes, too large to be a .spic file")
    return data


class SpicImageFile(ImageFile.ImageFile):
    """A .spic file: size, mode and info["codec"] at open, pixels on load()."""

    format = FORMAT
    format_description = "segpic learned image codec"

    def _open(self) -> None:
        assert self.fp is not None
        try:
            frame = container.read_frame(_read_file(self.fp))
        except SegpicError as exc:
            # not SyntaxError: Pillow would swallow it and say only "cannot
            # identify"; the magic was ours, so no other plugin wants this file
            where = f" {self.filename!r}" if self.filename else ""
            raise UnidentifiedImageError(f"cannot identify image file{where}: {exc}") from exc
        if hasattr(self, "_mode"):  # Pillow >= 10.1: `mode` is a read-only property
            self._mode = "RGB"
        else:  # Pillow 10.0, the oldest we support
            self.mode = "RGB"
        self._size = (frame.width, frame.height)
        self.info["codec"] = frame.codec
        self.tile = [_tile(FORMAT, (0, 0, *self._size), 0, None)]

    def verify(self) -> None:
        """Check the file without decoding the image: the frame and checksum (as at
        open) and the codec's header and stream table (no torch, no weights)."""
        from . import codecs

        try:
            if self.fp is not None:
                self.fp.seek(0)
                try:
                    codecs.describe(_read_file(self.fp), details=True)
                except SegpicError as exc:
                    raise OSError(str(exc)) from exc
        finally:
            super().verify()  # closes the file, as Pillow's verify does


class SpicDecoder(ImageFile.PyDecoder):
    """Decodes the whole file in one call (the codecs decode whole images)."""

    _pulls_fd = True

    def decode(self, buffer: Any) -> tuple[int, int]:
        try:
            # ImageFile.Parser hands over the complete file as `buffer` and no fd:
            # it only gets a decoder once the file has opened, i.e. is whole
            data = bytes(buffer) if self.fd is None else _read_file(self.fd)
            pixels = _decode(data)
        except SegpicError as exc:
            raise OSError(str(exc)) from exc
        self.set_as_raw(pixels.tobytes())
        return -1, 0


# Loading weights takes seconds, coding a small image a fraction of that: keep each
# encoder and decoder once per process. One lock for loading and using them: the
# codecs were not written for concurrent calls on one model, and torch already
# spreads each call over the cores.
_LOADED: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _loaded(key: tuple, load: Any) -> Any:
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def _decode(data: bytes) -> Any:
    from . import codecs

    with _LOCK:
        frame, fields = codecs.describe(data)
        # the decoder depends on the codec and the model the file names
        decoder = _loaded(("decode", frame.codec, fields.get("model")),
                          lambda: codecs.load_decoder(frame))
        return decoder.decode(data)


def _encode(pixels: Any, codec: str, quality: float | None, targets: dict[str, Any],
            options: dict[str, Any]) -> Any:
    from . import codecs

    loader, rest = codecs.split_options(codec, options)
    with _LOCK:
        try:
            key = ("encode", codec, tuple(sorted(loader.items())))
            hash(key)
        except TypeError:  # an unhashable option value: load afresh
            encoder = codecs.load_encoder(codec, **loader)
        else:
            encoder = _loaded(key, lambda: codecs.load_encoder(codec, **loader))
        return encoder.encode(pixels, quality=quality, reconstruct=False, **targets, **rest)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Encode `im` into `fp`. Options (as `segpic encode`): codec ("segpic", the
    default, or "moric"), quality (the codec's scale, segpic 1 to 6) or one target
    (bpp, size in bytes or "40k", psnr in dB; best_effort=True writes the closest
    file where none meets it, else a ValueError), device,
    and the options the codecs declare (`codecs.all_option_names()`; segpic: grid,
    model, weights, exact; moric: steps, time_limit, preset, regions, region_count,
    contours, roi); one of another codec is an error. Pillow plugins ignore the
    options they do not know, so does this one (e.g. exif from a generic pipeline).
    Modes other than RGB are converted first, as `segpic encode` does: alpha dropped
    (RGBA, LA, PA), gray, palette and CMYK expanded to RGB, 16-bit gray scaled to 8
    bits."""
    from . import codecs
    from .image_io import ImageError, _to_rgb8

    info = im.encoderinfo
    codec = info.get("codec") or codecs.DEFAULT_CODEC
    codecs.get(codec)  # an unknown codec: CodecError (a ValueError) before converting
    targets = {k: info[k] for k in TARGET_OPTIONS if info.get(k) is not None}
    options = {k: info[k] for k in codecs.all_option_names()
               if k not in ("quality", *TARGET_OPTIONS) and info.get(k) is not None}
    name = Path(os.fsdecode(filename) or "image")  # "" when saving to a file object
    try:
        pixels = _to_rgb8(im, name).pixels
    except ImageError as exc:
        raise OSError(f"cannot write mode {im.mode} as {FORMAT}") from exc
    result = _encode(pixels, codec, info.get("quality"), targets, options)
    for note in result.notes:  # e.g. MoRIC stopped at its time limit
        warnings.warn(f"{name}: {note}", stacklevel=2)
    fp.write(result.data)


def register() -> None:
    """Register the "SPIC" format with Pillow (open, save, ".spic", MIME type).
    Importing this module already does; calling it again changes nothing."""
    Image.register_open(FORMAT, SpicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(FORMAT, SpicDecoder)


register()

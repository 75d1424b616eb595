"""Reading and writing one file for `segpic encode`, `decode` and `batch`: a path
or `-` (standard input or output, `stdio`), an image in the format its name
asks for (`image_formats`), every output written whole (atomically to a file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import codecs
from ..codecs import EncodeResult
from ..errors import CodecError
from ..limits import max_spic_bytes
from .base import DecoderCache, EncoderSetup, warn
from .stdio import STDIN_NAME, check_stdout, display, is_stdio, read_stdin, write_stdout

if TYPE_CHECKING:
    import numpy as np


def check_output(out: Path) -> None:
    if is_stdio(out):
        check_stdout()
        return
    if out.is_dir():
        raise CodecError(f"{out}: is a directory; give a file name")
    if not out.parent.is_dir():
        raise CodecError(f"{out.parent}: output folder does not exist")


def write_output(path: Path, data: bytes) -> None:
    """The whole output at once: atomically into a file, or to standard output."""
    from ..image_io import atomic_write_bytes

    if is_stdio(path):
        write_stdout(data)
    else:
        atomic_write_bytes(path, data)


def encode_file(setup: EncoderSetup, src: Path, dst: Path, quality: float | None,
                bpp: float | None, strip: bool = False, size: int | None = None,
                psnr: float | None = None, best_effort: bool = False,
                **hooks) -> EncodeResult:
    """Encode src (turned upright; `-`: standard input) into dst (`-`: standard
    output), with its metadata unless `strip`. A size or bpp target counts the
    whole file, metadata included; --strip leaves out the metadata and the
    target's record, for the image alone."""
    from ..image_io import load_image, load_image_data  # numpy, Pillow: not for info
    from ..limits import max_image_bytes

    if is_stdio(src):
        image = load_image_data(read_stdin(max_image_bytes(), "an image"), STDIN_NAME,
                                metadata=not strip)
    else:
        image = load_image(src, metadata=not strip)
    for note in image.notes:
        warn(note)
    result = setup.encoder(**hooks).encode(
        image.pixels, quality=quality, bpp=bpp, size=size, psnr=psnr,
        best_effort=best_effort, reconstruct=False, record_target=not strip,
        metadata=None if strip else image.metadata, **setup.options)
    write_output(dst, result.data)
    for note in result.notes:  # e.g. stopped early; a target met by best effort
        warn(f"{display(src)}: {note}")
    return result


@dataclass(frozen=True)
class ImageOutput:
    """How decode writes its image: --format (None: by the extension), and the
    lossy formats' qualities."""

    format: str | None = None
    jpeg_quality: int = 95
    webp_quality: int | None = None  # None: lossless


def decode_file(cache: DecoderCache, src: Path, dst: Path,
                regions: tuple[int, ...] | None = None, strip: bool = False,
                output: ImageOutput = ImageOutput()) -> np.ndarray:
    """Decode src (`-`: standard input) into the image format dst's extension names
    (or `output.format`; PNG for `-`), with the file's metadata where the format
    holds it, unless `strip`; `regions`: layered decoding (an RGBA image holding
    those regions only), for codecs whose files have regions."""
    from .. import image_formats, target_record

    fmt = image_formats.output_format(None if is_stdio(dst) else dst, output.format)
    data = read_spic(src)
    frame, fields = codecs.describe(data)
    decoder = cache.get(frame, fields)
    if regions is None:
        pixels = decoder.decode(data)
    elif not hasattr(decoder, "decode_regions"):
        raise CodecError(f"{display(src)}: a {frame.codec} file has no regions to decode "
                         "alone (--region applies to moric files)")
    else:
        pixels = decoder.decode_regions(data, set(regions))
    # the target's record describes the .spic file, not the picture: left out
    metadata = {} if strip else target_record.without(frame.metadata)
    encoded, notes = image_formats.encode_image(pixels, fmt, metadata, output.jpeg_quality,
                                                output.webp_quality)
    for note in notes:
        warn(f"{display(dst, stdin=False)}: {note}")
    write_output(dst, encoded)
    return pixels


def read_spic(path: Path) -> bytes:
    limit = max_spic_bytes()
    if is_stdio(path):
        return read_stdin(limit, "a .spic file")
    if not path.exists():
        raise CodecError(f"{path}: no such file")
    if path.is_dir():
        raise CodecError(f"{path}: is a directory, not a .spic file")
    too_large = f"{path}: more than {limit} bytes, too large to be a .spic file"
    if path.stat().st_size > limit:
        raise CodecError(too_large)
    # read at most limit + 1 bytes: a pipe or a device (/dev/zero) has no size to
    # check beforehand and must not fill the memory
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CodecError(too_large)
    return data

"""What every `segpic` command shares: the command group, one-line errors, the
options common to the codecs (reading and writing one file: `files`)."""

from __future__ import annotations

import errno
import functools
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from .. import codecs, container, heap
from ..errors import CodecError, SegpicError
from ..extras import MissingInstallError, needs_encode_install
from ..limits import max_pixels
from ..options import DEVICE, TARGETS, CodecOption

_stderr_console: Any = None  # rich.console.Console, made by stderr_console()
# SegpicError covers ContainerError, CodecError, StreamError, ImageError, WeightsError
EXPECTED_ERRORS = (SegpicError, click.ClickException)
# Errors after which every further write in a batch would fail the same way
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS} | (
    {errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())


EXIT_USAGE = 2  # bad input, bad file, missing weights: the user can fix it
EXIT_FAILED = 1  # batch: some files failed; or an unexpected internal error


def stderr_console() -> Any:
    """rich's Console on stderr, made at its first use: importing rich costs a
    quick command (a decode) more than its own work."""
    global _stderr_console
    if _stderr_console is None:
        from rich.console import Console

        _stderr_console = Console(stderr=True)
    return _stderr_console


def swap_stderr_console(replacement: Any) -> Any:
    """Make `replacement` the console of errors, warnings and progress; returns
    the one it replaces (None if none was made yet)."""
    global _stderr_console
    previous, _stderr_console = _stderr_console, replacement
    return previous


def error(message: str, code: int = EXIT_USAGE) -> None:
    from rich.markup import escape

    stderr_console().print(f"[bold red]segpic: error:[/] {escape(message)}", highlight=False,
                           soft_wrap=True)
    raise SystemExit(code)


def warn(message: str) -> None:
    from rich.markup import escape

    stderr_console().print(f"[yellow]segpic: warning:[/] {escape(message)}", highlight=False,
                           soft_wrap=True)


def handle_errors(func):
    """Turn every failure into one line on stderr and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            max_pixels()  # a bad SEGPIC_MAX_PIXELS is a usage error, reported up front
        except ValueError as exc:
            error(str(exc))
        try:
            return func(*args, **kwargs)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            error("interrupted", 130)
        except EXPECTED_ERRORS as exc:
            error(str(exc))
        except ModuleNotFoundError as exc:  # e.g. `segpic train` in a decode-only install
            try:
                with needs_encode_install("this command"):
                    raise exc
            except MissingInstallError as missing:
                error(str(missing))
            error(f"internal error (ModuleNotFoundError: {exc})", EXIT_FAILED)
        except OSError as exc:
            error(os_message(exc))
        except MemoryError:
            error("out of memory", EXIT_FAILED)
        except Exception as exc:  # noqa: BLE001 - the CLI must never print a traceback
            error(f"internal error ({type(exc).__name__}: {exc})", EXIT_FAILED)

    return wrapper


def os_message(exc: OSError) -> str:
    name = f"{exc.filename}: " if exc.filename else ""
    return f"{name}{exc.strerror or exc}"


class LazyGroup(click.Group):
    """The commands live in modules imported when a command is used: `segpic info`
    then loads neither numpy, Pillow nor torch, and starts in a fraction of the time.
    Importing a module registers its commands on `main` (@main.command())."""

    MODULES = {"encode": "coding", "decode": "coding", "info": "coding", "batch": "batch",
               "train": "tools", "bench": "tools", "import-weights": "weights_cmd"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.MODULES))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.MODULES:
            importlib.import_module(f"{__package__}.{self.MODULES[name]}")
        return self.commands.get(name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="segpic")
def main() -> None:
    """segpic: learned image codecs (SegPIC, ECCV 2024; MoRIC, NeurIPS 2025) with real
    .spic bitstreams.

    \b
      segpic encode photo.png photo.spic --quality 4
      segpic decode photo.spic photo-decoded.png
      segpic info photo.spic
      segpic batch photos/ coded/          (and --decode for the reverse)
    """
    # freed memory goes back to the OS between the codecs' large stages: a lower
    # peak for the command, at no cost in a process that pays every page once
    heap.enable_between_stages()



def quality_options(func: Callable) -> Callable:
    """--quality and the targets every codec's API takes (options.TARGETS, declared
    there once): --bpp, --size, --psnr, --best-effort."""
    owners = ", ".join(n for n, e in codecs.CODECS.items() if e.options().takes_targets)
    for option in reversed(TARGETS):
        kind = {"is_flag": True} if option.kind == "bool" else {
            "type": ByteSize() if option.kind == "size" else float}
        func = click.option(option.flag, option.name, default=None, metavar=option.metavar,
                            help=f"{owners}: {option.help}", **kind)(func)
    return click.option("--quality", "-q", type=float, default=None,
                        help="Quality 1 (smallest) to 6 (best); fractions interpolate. "
                             "Default: the middle (3.5). Or one target: --bpp, --size, "
                             "--psnr.")(func)


class ByteSize(click.ParamType):
    """A size in bytes: 40000, 40k, 1.5M, 64Ki (targets.parse_size)."""

    name = "size"

    def convert(self, value, param, ctx) -> int:
        from ..targets import parse_size

        try:
            return parse_size(value)
        except CodecError as exc:
            self.fail(str(exc), param, ctx)


def codec_options(func: Callable) -> Callable:
    """--codec, --device, and the options each codec declares (its `options.OPTIONS`),
    each a flag of its own: the command receives them as keyword arguments."""
    declared: dict[str, tuple[CodecOption, list[str]]] = {}
    for name, entry in codecs.CODECS.items():
        for option in entry.options().options:
            if option.cli:
                declared.setdefault(option.name, (option, []))[1].append(name)
    func = device_option(func)
    for option, owners in reversed(declared.values()):
        kind = {"is_flag": True} if option.kind == "bool" else {"type": _click_type(option)}
        func = click.option(option.flag, option.name, default=None, metavar=option.metavar,
                            help=f"{', '.join(owners)}: {option.help_text()}", **kind)(func)
    return click.option("--codec", type=click.Choice(sorted(codecs.CODECS)),
                        default=codecs.DEFAULT_CODEC, show_default=True,
                        help="Which codec encodes (decoding follows the file).")(func)


def device_option(func: Callable) -> Callable:
    return click.option("--device", type=click.Choice(DEVICE.choices), default=DEVICE.default,
                        show_default=True, help=DEVICE.help)(func)


def _click_type(option: CodecOption) -> click.ParamType | type:
    if option.kind == "int":
        if option.minimum is None and option.maximum is None:
            return int
        return click.IntRange(option.minimum, option.maximum)
    return {"float": float, "str": str, "path": click.Path(path_type=Path),
            "choice": click.Choice(option.choices), "duration": TimeSpan()}[option.kind]


def output_format_options(func: Callable) -> Callable:
    """--format, --jpeg-quality, --webp-quality: the image a decode writes."""
    from ..image_formats import DEFAULT_JPEG_QUALITY, FORMATS

    func = click.option("--webp-quality", type=click.IntRange(0, 100), default=None,
                        help="WebP output: lossy at this quality [default: lossless].")(func)
    func = click.option("--jpeg-quality", type=click.IntRange(1, 100),
                        default=DEFAULT_JPEG_QUALITY, show_default=True,
                        help="JPEG output: its quality.")(func)
    return click.option("--format", "output_format", type=click.Choice(sorted(FORMATS)),
                        default=None, help="The image format to write, whatever the "
                        "extension [default: the output's extension; png for -].")(func)


def strip_option(func):
    """--strip: leave out the image's metadata (encode) or the file's (decode)."""
    return click.option("--strip", is_flag=True,
                        help="Drop the metadata (ICC profile, EXIF, XMP), kept by default. "
                             "The EXIF orientation is applied to the pixels either "
                             "way.")(func)


class TimeSpan(click.ParamType):
    """A duration: plain seconds or a number with s, m or h."""

    name = "duration"
    UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        scale = self.UNITS.get(text[-1:], None)
        number = text[:-1] if scale else text
        try:
            seconds = float(number) * (scale or 1.0)
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 90s, 10m, 1.5h)", param, ctx)
        if not 0 < seconds < 365 * 86400:
            self.fail(f"{value!r}: a time limit must be positive (and under a year)", param,
                      ctx)
        return seconds


class EncoderSetup:
    """The encoder of one command (loaded once) and its per-image options. `options`:
    the codec options of the command line, None where not given."""

    def __init__(self, codec: str, device: str, options: Mapping[str, Any]):
        declared = codecs.get(codec).options()
        loader, encode = declared.names("loader"), declared.names("encode")
        given = {k: v for k, v in options.items() if v is not None}
        for key in given:
            if key not in loader + encode:
                flag = "--" + key.replace("_", "-")
                raise click.UsageError(f"{flag} does not apply to --codec {codec}")
        self.codec = codec
        self.optimises = declared.optimises
        self.loader = {k: v for k, v in given.items() if k in loader}
        self.options = {k: v for k, v in given.items() if k in encode}
        self.device = device
        self._encoder: codecs.Encoder | None = None

    def encoder(self, **hooks: Any) -> codecs.Encoder:
        """The loaded encoder; `hooks` (progress, should_stop) for one that optimises."""
        if self._encoder is None or hooks:
            self._encoder = codecs.load_encoder(self.codec, device=self.device, **self.loader,
                                                **hooks)
        return self._encoder


class DecoderCache:
    """Load each decoder once per command: per codec and model (decode follows the file)."""

    def __init__(self, weights: Path | None, device: str):
        self.weights = weights
        self.device = device
        self.loaded: dict[tuple, codecs.Decoder] = {}

    def get(self, frame: container.FrameHeader, fields: dict) -> codecs.Decoder:
        key = (frame.codec, fields.get("model"))
        if key not in self.loaded:
            self.loaded[key] = codecs.load_decoder(frame, weights=self.weights,
                                                   device=self.device)
        return self.loaded[key]

def check_quality_args(quality: float | None, bpp: float | None = None,
                       size: int | None = None, psnr: float | None = None,
                       best_effort: bool = False, codec: str | None = None) -> None:
    """One of --quality and the targets; a codec without targets refuses them here,
    before any image is read."""
    from ..targets import from_options

    try:
        target = from_options(quality, bpp, size, psnr)
    except CodecError as exc:
        raise click.UsageError(str(exc)) from None
    if best_effort and target is None:
        raise click.UsageError("--best-effort applies to --bpp, --size or --psnr")
    if target is not None and codec is not None and not codecs.get(codec).options().takes_targets:
        raise click.UsageError(f"{codec} has no rate target yet: use --quality")

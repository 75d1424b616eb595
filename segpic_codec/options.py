"""How a codec declares its options, once: their names, types, help and the stage
that takes them. The command line (`segpic encode`, `segpic batch`), the Python
API (`codecs.encode`, `load_encoder`, `load_decoder`) and the Pillow plugin all
read these declarations; none keeps its own list.

Each codec package has a torch-free `options` module with `OPTIONS`, a
`CodecOptions`. Imports neither torch, numpy nor click: `segpic info` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "loader": picks the encoder (`codecs.load_encoder`, loaded once per command);
# "encode": given with each image (`Encoder.encode`)
Stage = Literal["loader", "encode"]
# how the command line reads the value (the Python API also takes richer values
# where the codec documents them, e.g. a label array for MoRIC's regions)
Kind = Literal["int", "float", "str", "path", "choice", "duration", "bool", "size"]


@dataclass(frozen=True)
class CodecOption:
    name: str  # keyword of the Python API and of Pillow's save; flag --name-with-dashes
    kind: Kind
    help: str  # one sentence; the command line prefixes the codec's name
    stage: Stage
    default: object = None  # what the codec uses when the option is not given (help only)
    choices: tuple[str, ...] = ()  # kind "choice"
    minimum: int | None = None  # kind "int"
    maximum: int | None = None
    metavar: str | None = None
    decoder: bool = False  # `load_decoder` takes it too
    cli: bool = True  # a flag of `segpic encode` and `segpic batch`

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help_text(self) -> str:
        """The help with the default the codec applies."""
        return self.help + ("" if self.default is None else f" [default: {self.default}]")


@dataclass(frozen=True)
class CodecOptions:
    """A codec's declared options (beyond COMMON: quality, the targets and device,
    which every codec's API takes). `optimises`: its encoder takes `progress` and
    `should_stop` hooks (the command line shows a bar and stops cleanly on
    Ctrl-C). `rate_targets`: it meets --bpp, --size and --psnr (TARGETS) by trial
    encodes over its quality scale; its encoder has `quality_grid()`.
    `steered_targets`: it meets them in one encode; its `encode_streams` takes
    `target` and `file_size` (`target_search.encode_steered`)."""

    options: tuple[CodecOption, ...]
    optimises: bool = False
    rate_targets: bool = False
    steered_targets: bool = False

    @property
    def takes_targets(self) -> bool:
        return self.rate_targets or self.steered_targets

    def __post_init__(self) -> None:
        names = [option.name for option in self.options]
        if len(set(names)) != len(names) or set(names) & set(COMMON):
            raise ValueError(f"options declared twice: {names}")

    def names(self, stage: Stage) -> tuple[str, ...]:
        return tuple(o.name for o in self.options if o.stage == stage)

    def decoder_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options if o.decoder)


# What every codec's API takes: `codecs.encode(pixels, codec, quality, bpp, size,
# psnr, best_effort, device=...)`; a codec without `takes_targets` refuses targets
DEVICE = CodecOption("device", "choice", "auto uses CUDA when present.", "loader",
                     default="auto", choices=("auto", "cpu", "cuda"))
TARGETS = (
    CodecOption("bpp", "float", "target bits per pixel of the whole file: the highest "
                "quality whose file fits.", "encode", metavar="B"),
    CodecOption("size", "size", "target file size in bytes (as cwebp's -size), "
                "metadata included: the highest quality whose file fits. k = 1000, "
                "M = 1000000, Ki = 1024, Mi = 1048576 bytes; e.g. 40k, 1.5M, 64Ki.",
                "encode", metavar="BYTES"),
    CodecOption("psnr", "float", "target PSNR in dB (RGB): the lowest quality that "
                "reaches it.", "encode", metavar="DB"),
    CodecOption("best_effort", "bool", "when the target cannot be met, write the "
                "closest file (the smallest, or the best) instead of failing.", "encode"),
)
TARGET_NAMES = ("bpp", "size", "psnr")
COMMON = ("quality", *(o.name for o in TARGETS), "device")

"""MoRIC's options, declared once (see `segpic_codec.options`): the command line,
the Python API and the Pillow plugin read them here. Torch-free: the presets come
from the recipe, which imports no torch."""

from __future__ import annotations

from ..options import CodecOption, CodecOptions
from .file_format import MAX_CODED_REGIONS
from .training.recipe import PRESET_MINUTES, PRESETS

DEFAULT_QUALITY = 3.5
DEFAULT_PRESET = "medium"
DEFAULT_REGION_COUNT = 3  # the paper's default N
CONTOUR_MODES = ("auto", "lossless", "lossy")

_BUDGETS = ", ".join(f"{name} {recipe.steps}" for name, recipe in PRESETS.items())
_MINUTES = ", ".join(f"{name} {minutes:g}" for name, minutes in PRESET_MINUTES.items())

OPTIONS = CodecOptions((
    CodecOption("steps", "int", "optimisation steps (overrides the preset's).", "loader",
                minimum=1),
    CodecOption("time_limit", "duration", "stop optimising after this long (90s, 10m, 1h) "
                "and write the best state.", "loader"),
    CodecOption("preset", "choice", f"a named optimisation budget, in steps: {_BUDGETS} "
                f"(about {_MINUTES} minutes per Kodak image on 2 CPU cores).",
                "loader", default=DEFAULT_PRESET, choices=tuple(PRESETS)),
    CodecOption("regions", "str", "the region partition: auto (a segmentation into "
                "--region-count regions; default), none (one region), or an integer label "
                "image of the same size.", "encode", metavar="auto|none|LABELS.png"),
    CodecOption("region_count", "int", "regions of --regions auto.", "encode",
                default=DEFAULT_REGION_COUNT, minimum=1, maximum=MAX_CODED_REGIONS),
    CodecOption("contours", "choice", "how region outlines are coded: lossy C* polygons "
                "where they save bits (auto; default), exact crack chains (lossless; the "
                "default for --roi), or C* wherever a polygon exists (lossy).", "encode",
                choices=CONTOUR_MODES),
    CodecOption("roi", "path", "code only this object (nonzero pixels of the mask); the "
                "decoded PNG is transparent outside it.", "encode", metavar="MASK.png"),
), optimises=True, steered_targets=True)

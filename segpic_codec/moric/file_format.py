"""The MoRIC file format's constants and header record, each defined once
here and imported by the header parser (`layout`), the streams and the
networks, which must all agree on them. Imports nothing, so `segpic info`
stays fast.

The header's byte layout, and what each field means, is in `layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_VERSION = 2  # the newest version this build reads: 2..MAX_CODED_REGIONS regions
SINGLE_REGION_VERSION = 1  # a one-region file is written as version 1
PRESET_NAMES = ("custom", "fast", "medium", "slow", "placebo")  # header preset ids
ACTIVATIONS = ("relu", "gelu")  # header activation ids (the GMN's)
# The networks' parameter groups, in stream and header order: every kind of
# every module, module by module.
MODULES = ("arm", "upsampling", "gmn", "lsn")
KINDS = ("weight", "bias")
NUM_GRIDS = 7  # latent grids: grid i is 1/2**i of the image's size
MAX_FEATURES = 64  # GMN features
MAX_CODED_REGIONS = 16  # regions a file codes, one LSN each
MAX_CONTOUR_REGIONS = 255  # regions a contour stream can hold: its count is one byte
MAX_ABS_LATENT = 256  # latents lie in [-256, 255]: keeps the integer ARM exact
MAX_EXPONENT = 24  # parameter quantisation steps are 2**-e, e <= 24
MAX_EXPGOLOMB_ORDER = 15  # exp-Golomb orders of files with exp-Golomb coded parameters
NUM_SCALES = 160  # Laplace scales of range-coded parameters (`param_stream`)
# the shipped network prior that prior-coded parameters are differences from
# (`bitstream.param_prior`); a changed prior gets a new id
PRIOR_ID = 1


@dataclass
class Header:
    """A MoRIC payload's fields (`layout.pack`, `layout.unpack`)."""

    quality: float
    preset: str
    steps: int
    interrupted: bool
    features: int
    activation: str
    regions: int
    latent_low: int
    latent_high: int
    # (module, kind) -> (step exponent, Laplace scale index or exp-Golomb order)
    coding: dict[tuple[str, str], tuple[int, int]]
    # single-object coding: region 0 is not coded (version 2 only)
    object_only: bool = False
    # parameters range coded (`param_stream`), not exp-Golomb coded
    range_coded: bool = True
    # parameters coded as differences from the shipped prior (`param_prior`)
    prior_coded: bool = False
    # upsampling and synthesis in exact fixed point (`decoder.layers`), not float32
    integer_synthesis: bool = True

    @property
    def num_streams(self) -> int:
        return 1 + (self.regions > 1) + NUM_GRIDS

    @property
    def version(self) -> int:
        return SINGLE_REGION_VERSION if self.regions == 1 else FORMAT_VERSION

    @property
    def latent_streams(self) -> slice:
        """Where the latent grids' streams are in the stream list."""
        return slice(1 + (self.regions > 1), None)

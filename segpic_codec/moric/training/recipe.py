"""Encoding recipes: how the per-image optimisation spends its budget.

A recipe is described in fractions of the budget, so the same recipe serves
a step count, a time limit or both (whichever ends first):

  warm-up   several initialisations trained briefly with soft rounding + noise
            at a fixed temperature; the best half is trained again, then the
            best one (hard-rounded loss) goes on (Cool-Chic 5's competition)
  main      SOAP on the network weights, Adam on the latents, cosine
            learning-rate decay, soft rounding with Gaussian noise, temperature
            and noise annealed (Cool-Chic 5 / C3)
  final     latents hard-rounded and frozen, networks fine-tuned at a small
            learning rate (the quantisation the decoder will see)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..file_format import PRESET_NAMES

QUALITY_MIN, QUALITY_MAX = 1.0, 6.0
LAMBDA_AT_MIN, LAMBDA_AT_MAX = 2e-2, 1e-4


def quality_to_lambda(quality: float) -> float:
    """Log-linear: quality 1 -> 2e-2 (about 0.1 bpp on Kodak), 6 -> 1e-4."""
    t = (quality - QUALITY_MIN) / (QUALITY_MAX - QUALITY_MIN)
    log_min, log_max = math.log(LAMBDA_AT_MIN), math.log(LAMBDA_AT_MAX)
    return math.exp(log_min + t * (log_max - log_min))


def lambda_to_quality(lmbda: float) -> float:
    """The inverse of quality_to_lambda, clamped to the scale and rounded to the
    header's thousandths."""
    log_min, log_max = math.log(LAMBDA_AT_MIN), math.log(LAMBDA_AT_MAX)
    t = (math.log(lmbda) - log_min) / (log_max - log_min)
    quality = QUALITY_MIN + t * (QUALITY_MAX - QUALITY_MIN)
    return round(min(max(quality, QUALITY_MIN), QUALITY_MAX), 3)


RAMP_TARGETS = ("both", "networks", "latents")  # whose rates `coarse_lr_ramp` holds


@dataclass(frozen=True)
class Recipe:
    steps: int  # total optimisation steps of the preset (warm-up included)
    warmup_candidates: int = 4
    warmup_survivors: int = 2  # trained a second time before the best one goes on
    warmup_fraction: float = 0.12  # of the budget, all candidates and stages together
    warmup_temperature: float = 0.35
    final_fraction: float = 0.03
    lr: float = 1e-2
    network_lr: float | None = None  # the networks' peak rate when it differs from lr
    lr_min: float = 1e-5
    latent_eps: float = 1e-8  # the latents' optimiser epsilon
    final_lr: float = 1e-4
    temperature: tuple[float, float] = (0.35, 0.08)
    noise: tuple[float, float] = (0.22, 0.15)
    latent_gain: float = 16.0
    grad_clip: float = 1.0  # on the network parameters' gradient norm
    eval_every: int = 50  # hard-rounded evaluations that track the best state
    optimizer: str = "soap"  # for the networks ("adam" also works); latents: Adam
    network_betas: tuple[float, float] = (0.95, 0.95)
    weight_decay: float = 0.01
    arm_output_init: float = 1.0  # times Cool-Chic's random initial ARM output weights
    synthesis_init_scale: float = 1.0  # times MoRIC's initial synthesis weights
    features: int = 24  # GMN width
    prior: bool = True  # start the networks from the shipped prior where one fits
    latent_init: str = ""  # a file of `latent_init` to start the latents from ("": zeros)
    activation: str = "gelu"
    # of the budget, spent first on the image at half size (`coarse_start`)
    coarse_share: float = 0.22
    # the half run's λ, times the full run's (a quarter would price a half-size
    # bit as a full-size one, bpp being per pixel; it did not pay: +0.8 %)
    coarse_lambda_scale: float = 1.0
    # how many halvings deep the coarse start goes: the half run starts from a
    # quarter-size run of its own share, and so on (1: the half size only)
    coarse_levels: int = 1
    # after a coarse start, the learning rates rise linearly from 2 % of the
    # cosine's over this share of the main phase (0: at their peak from the
    # first step); the networks' only: their first full-size steps at the peak
    # rate undid part of what the half run taught them
    # (bench/results/moric-time/coarse-to-fine/schedule/)
    coarse_lr_ramp: float = 0.1
    coarse_ramp_on: str = "networks"  # whose rates the ramp holds: both, networks or latents
    ramp_from_prior: bool = False  # the ramp also where the networks start from the prior
    # a size target's last λ update counts the parameter stream as the networks
    # code then (a quantisation search on a copy), not by the estimate in the
    # quality, which missed Kodak files' by up to 184 bytes (7b567a5)
    probe_parameters: bool = False
    # a target's λ controller: the share of its predicted miss an update corrects
    # (half that in the first fifth: `rate_control`)
    target_gain: float = 0.7

    def __post_init__(self) -> None:
        if self.coarse_ramp_on not in RAMP_TARGETS:
            raise ValueError(f"coarse_ramp_on {self.coarse_ramp_on!r}: one of "
                             f"{', '.join(RAMP_TARGETS)}")

    def warmup_noise(self, lmbda: float) -> float:
        # Cool-Chic 5: more noise at low rates
        return (-0.432 * math.log10(lmbda) + 0.747) / 10.0

    def with_steps(self, steps: int) -> Recipe:
        return replace(self, steps=steps)


# Sized by wall-clock minutes on a Kodak image (768x512, three regions) with
# two cores on the idle 2-core machine: `/usr/bin/time segpic encode
# kodim23.png out.spic --codec moric --preset P` took 189 s at 550 steps and
# 85 s at 220, so a step costs about 0.315 s and the rest (partition,
# parameter search, coding) about 16 s. Hence fast about 1 minute, medium (the
# default) about 2.5, slow about 10, placebo about 30. The cheaper parameter
# search saved 7.3 s of `fast` and 10.4 s of `medium` on another machine
# (bench/results/moric-time/search/presets-idle.jsonl, where a step took
# 0.545 s), about 13 and 19 steps: fast and medium got them back (140 -> 153,
# 420 -> 440), so they take the time they took before it. All start from the
# shipped network prior (F = 24), which is what makes a few hundred steps
# worth a file (`bench/results/moric-time/`).
PRESETS: dict[str, Recipe] = {
    "fast": Recipe(steps=153),
    "medium": Recipe(steps=440),
    "slow": Recipe(steps=1850),
    "placebo": Recipe(steps=5650),
}
# what each preset is sized to take, in minutes (the measurement above)
PRESET_MINUTES = {"fast": 1.0, "medium": 2.5, "slow": 10.0, "placebo": 30.0}
assert all(name in PRESET_NAMES for name in PRESETS)
assert set(PRESET_MINUTES) == set(PRESETS)

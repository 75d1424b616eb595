"""The network prior as the parameter stream sees it (torch-free).

A file whose header sets the prior flag codes each quantised parameter as its
difference from the shipped prior's value on the same step,
round(prior * 2**e); a decoder adds it back. The integers the networks get
are the same either way, so only the stream's residuals shrink: after a
short encode the networks stay near where the prior started them.

round() here is numpy's round-half-to-even on a float64 product by a power of
two, both exact IEEE operations: every machine gets the same references. The
prior's values are therefore part of the file format: a shipped prior file
never changes (a new one gets a new id), and a test pins its hash.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ...shipped_data import shipped_weights_root
from ..errors import MoricFormatError
from ..file_format import PRIOR_ID

PRIOR_FOLDER = "moric"


def prior_path(features: int, activation: str, root: Path | None = None) -> Path:
    return (root or shipped_weights_root()) / PRIOR_FOLDER / \
        f"prior-{PRIOR_ID}-f{features}-{activation}.safetensors"


@functools.lru_cache(maxsize=4)
def load_prior_arrays(features: int, activation: str) -> dict[str, np.ndarray] | None:
    """{"arm.w1": array, ..., "lsn.w_in": ...} (one LSN for every region), or
    None where no prior of this architecture is shipped."""
    path = prior_path(features, activation)
    return prior_arrays(path) if path.is_file() else None


def prior_arrays(path: Path) -> dict[str, np.ndarray]:
    """A prior file's arrays, float32 (the shipped one, or another for experiments)."""
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}


def required_prior(features: int, activation: str) -> dict[str, np.ndarray]:
    """The prior a prior-coded file names; a format error where it is missing."""
    prior = load_prior_arrays(features, activation)
    if prior is None:
        raise MoricFormatError(f"the file's parameters are coded against MoRIC prior "
                               f"{PRIOR_ID} for {features} {activation} features, which this "
                               f"segpic does not have")
    return prior


def prior_key(module: str, name: str) -> str:
    """A parameter's key in the prior: every region's LSN ("3.w_in") maps to
    the prior's one ("lsn.w_in")."""
    if module == "lsn":
        name = name.split(".", 1)[1]
    return f"{module}.{name}"


def reference_integers(prior: dict[str, np.ndarray], module: str, names: list[str],
                       exponent: int) -> np.ndarray:
    """round(prior * 2**exponent) of these parameters, flat, in stream order."""
    if not names:
        return np.zeros(0, dtype=np.int64)
    values = np.concatenate([prior[prior_key(module, n)].reshape(-1) for n in names])
    return np.rint(values.astype(np.float64) * 2.0**exponent).astype(np.int64)

"""The networks' parameters as the parameter stream holds them: their names and
shapes (torch-free), and the one function that reads the stream into integer
arrays and quantisation exponents.

Each (module, kind) group is the module's parameters of that kind in the
order the networks register them (`networks/`); the names are PyTorch's
`named_parameters` names, and tests/test_moric_decoder.py checks the shapes
against the modules. A value v of a group with exponent e is v * 2**-e.
"""

from __future__ import annotations

import numpy as np

from ..errors import MoricFormatError
from ..file_format import KINDS, MAX_EXPONENT, MODULES, NUM_GRIDS, Header
from .arm_integer import ARM_WIDTH, CONTEXT_SIZE
from .param_prior import reference_integers, required_prior
from .param_stream import read_groups

LOCAL_WIDTH = 3  # an LSN's width (networks/synthesis.py)
# a module's parameters: {name: (integer values, exponent)}
ModuleIntegers = dict[str, tuple[np.ndarray, int]]


def parameter_shapes(features: int, regions: int
                     ) -> dict[tuple[str, str], list[tuple[str, tuple[int, ...]]]]:
    """(module, kind) -> [(parameter name, shape)] in stream order."""
    n, w, f, loc = CONTEXT_SIZE, ARM_WIDTH, features, LOCAL_WIDTH
    lsn_weights, lsn_biases = [], []
    for r in range(regions):
        lsn_weights += [(f"{r}.w_in", (loc, 2)), (f"{r}.w_res", (3, loc, loc))]
        lsn_biases += [(f"{r}.b_in", (loc,)), (f"{r}.b_res", (3, loc))]
    return {
        ("arm", "weight"): [("w1", (w, n)), ("w2", (w, w)), ("w_out", (2, w)),
                            ("w_linear", (2, n))],
        ("arm", "bias"): [("b1", (w,)), ("b2", (w,)), ("b_out", (2,))],
        ("upsampling", "weight"): [("taps", (NUM_GRIDS - 1, 4))],
        ("upsampling", "bias"): [],
        ("gmn", "weight"): [("w1", (f, NUM_GRIDS)), ("w2", (3, f)), ("w3", (3, 3, 3, 3)),
                            ("w4", (3, 3, 3, 3))]
        + [(f"mod_w.{k}", (3, loc + f + 3 * (k + 1))) for k in range(3)],
        ("gmn", "bias"): [("b1", (f,)), ("b2", (3,)), ("b3", (3,)), ("b4", (3,))]
        + [(f"mod_b.{k}", (3,)) for k in range(3)],
        ("lsn", "weight"): lsn_weights,
        ("lsn", "bias"): lsn_biases,
    }


def parameter_counts(features: int, regions: int) -> dict[tuple[str, str], list[int]]:
    """(module, kind) -> sizes of its parameters, in stream order."""
    return {group: [int(np.prod(shape)) for _, shape in named]
            for group, named in parameter_shapes(features, regions).items()}


def parameter_group_values(header: Header, parameters: bytes
                           ) -> dict[tuple[str, str], np.ndarray]:
    """Each (module, kind) group's integers, in stream order, from a parameter
    stream of either coding (range coded, or exp-Golomb in older files)."""
    counts = parameter_counts(header.features, header.regions)
    groups = [(m, k) for m in MODULES for k in KINDS]
    flats = read_groups(parameters, [(sum(counts[g]), header.coding[g][1]) for g in groups],
                        header.range_coded)
    return dict(zip(groups, flats, strict=True))


def read_parameters(header: Header, parameters: bytes,
                    prior: dict[str, np.ndarray] | None = None) -> dict[str, ModuleIntegers]:
    """The parameter stream -> per module, {parameter name: (integers shaped
    as the parameter, exponent)}; MoricFormatError on a corrupt stream. A
    prior-coded stream (header flag) holds differences from the network prior:
    `prior`, by default the shipped one the header names (`param_prior`)."""
    for group, (exponent, _) in header.coding.items():
        if not 0 <= exponent <= MAX_EXPONENT:
            raise MoricFormatError(f"bad quantisation step 2^-{exponent} of {group} "
                                   "in MoRIC header")
    if header.prior_coded and prior is None:
        prior = required_prior(header.features, header.activation)
    shapes = parameter_shapes(header.features, header.regions)
    out: dict[str, ModuleIntegers] = {m: {} for m in MODULES}
    for (module, kind), flat in parameter_group_values(header, parameters).items():
        exponent, start = header.coding[(module, kind)][0], 0
        if header.prior_coded:
            names = [name for name, _ in shapes[(module, kind)]]
            flat = flat + reference_integers(prior, module, names, exponent)
        for name, shape in shapes[(module, kind)]:
            size = int(np.prod(shape))
            out[module][name] = (flat[start:start + size].reshape(shape), exponent)
            start += size
    return out

"""Quantisation and coding of the network parameters (Cool-Chic's nnquant).

Each module (ARM, upsampling, GMN, LSN) has one quantisation step for its
weights and one for its biases, both powers of two (2**-e), chosen greedily,
module after module, to minimise D + lambda * (R_latents + R_parameters). The
quantised integers are range coded under one quantised Laplace per (module,
kind) (`param_stream`); steps and Laplace scales go in the header. Files
written before that (header flag bit 2 clear) hold signed exp-Golomb codes
with one order per group instead; they still decode. With a network prior
(header flag bit 3), the stream holds each integer's difference from the
prior's (`param_prior`); the integers themselves are the same. The decoder
reads the stream back with `parameters.read_parameters` (torch-free);
`load_parameters` puts what it reads into the torch networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..file_format import KINDS, MODULES
from .arm_integer import BIAS_FRACTION_BITS, MAX_ABS_PARAMETER, WEIGHT_FRACTION_BITS
from .param_prior import reference_integers
from .param_stream import best_scale, encode_groups
from .parameters import ModuleIntegers

Prior = dict[str, np.ndarray]  # `param_prior.load_prior_arrays`

WEIGHT_EXPONENTS = range(2, 15)
BIAS_EXPONENTS = range(2, 21)
# where each group's step search begins: the exponents most often chosen on
# the 64 files of bench/results/moric-time/now-af2dfd5 (fewer evaluations
# than one start for every group; bench/results/moric-time/search/)
START_EXPONENT = {("arm", "weight"): 6, ("arm", "bias"): 6, ("upsampling", "weight"): 9,
                  ("upsampling", "bias"): 10, ("gmn", "weight"): 6, ("gmn", "bias"): 9,
                  ("lsn", "weight"): 7, ("lsn", "bias"): 9}
assert set(START_EXPONENT) == {(module, kind) for module in MODULES for kind in KINDS}
SEARCH_MISSES = 2  # a direction ends after this many tries without an improvement


@dataclass
class GroupCoding:
    exponent: int  # step 2**-exponent
    # the Laplace scale index (`param_stream`); in files without range-coded
    # parameters, the exp-Golomb order
    model: int


def is_bias(name: str) -> bool:
    parts = name.split(".")
    base = parts[-2] if parts[-1].isdigit() else parts[-1]
    return base.startswith("b") or base == "mod_b"


def parameter_groups(modules: dict[str, nn.Module]) -> list[tuple[str, str, list[nn.Parameter]]]:
    """[(module, kind, parameters)] in stream order."""
    groups = []
    for module in MODULES:
        named = list(modules[module].named_parameters())
        for kind in KINDS:
            params = [p for n, p in named if is_bias(n) == (kind == "bias")]
            groups.append((module, kind, params))
    return groups


def _group_names(modules: dict[str, nn.Module], module: str, params: list[nn.Parameter]
                 ) -> list[str]:
    names = {id(p): n for n, p in modules[module].named_parameters()}
    return [names[id(p)] for p in params]


def _residuals(flat: np.ndarray, prior: Prior | None, module: str, names: list[str],
               exponent: int) -> np.ndarray:
    """What the stream holds for a group: its integers, less the prior's."""
    if prior is None:
        return flat
    return flat - reference_integers(prior, module, names, exponent)


def _limit(module: str, kind: str, exponent: int) -> float | None:
    """The ARM's integer path needs bounded values (see `arm`)."""
    return MAX_ABS_PARAMETER - 2.0**-exponent if module == "arm" else None


def quantized_integers(params: list[nn.Parameter], exponent: int, limit: float | None
                       ) -> list[torch.Tensor]:
    out = []
    for p in params:
        v = p.detach().double()
        if limit is not None:
            v = v.clamp(-limit, limit)
        out.append(torch.round(v * 2.0**exponent).to(torch.int64))
    return out


def _flat(integers: list[torch.Tensor]) -> np.ndarray:
    return np.concatenate([t.reshape(-1).cpu().numpy() for t in integers]) if integers else \
        np.zeros(0, dtype=np.int64)


def _assign(params: list[nn.Parameter], integers: list[torch.Tensor], exponent: int) -> None:
    with torch.no_grad():
        for p, q in zip(params, integers, strict=True):
            p.copy_((q.double() * 2.0**-exponent).to(p.dtype))


def _coded_bits(integers: list[torch.Tensor], prior: Prior | None, module: str,
                names: list[str], exponent: int) -> tuple[int, float]:
    """(Laplace scale index, bits) of a group as the stream codes it."""
    flat = _residuals(_flat(integers), prior, module, names, exponent)
    return best_scale(flat) if flat.size else (0, 0.0)


def _search_group(module: str, kind: str, params: list[nn.Parameter], names: list[str],
                  originals: dict[int, torch.Tensor],
                  evaluate: Callable[[str], tuple[float, float]], lmbda: float,
                  num_pixels: int, other_bits: int, prior: Prior | None
                  ) -> tuple[int, int, list[torch.Tensor]]:
    """(exponent, order, integers) of the best step for one group: a local
    search from a typical exponent, in both directions, stopping two steps after
    the last improvement (the loss is close to unimodal in the exponent)."""
    candidates = WEIGHT_EXPONENTS if kind == "weight" else BIAS_EXPONENTS
    limit_exp = WEIGHT_FRACTION_BITS if kind == "weight" else BIAS_FRACTION_BITS
    allowed = [e for e in candidates if e <= limit_exp]
    tried: dict[int, tuple[float, int, list[torch.Tensor]]] = {}

    def loss_at(exponent: int) -> float:
        if exponent not in tried:
            for p in params:
                p.data.copy_(originals[id(p)])
            integers = quantized_integers(params, exponent, _limit(module, kind, exponent))
            model, bits = _coded_bits(integers, prior, module, names, exponent)
            if bits == float("inf"):  # values beyond MAX_VALUE_BITS: not codable
                tried[exponent] = (bits, model, integers)
                return bits
            _assign(params, integers, exponent)
            mse, latent_bits = evaluate(module)
            loss = mse + lmbda * (latent_bits + bits + other_bits) / num_pixels
            tried[exponent] = (loss, model, integers)
        return tried[exponent][0]

    best = min(max(START_EXPONENT[(module, kind)], allowed[0]), allowed[-1])
    if not params:  # nothing to quantise (the upsampling has no biases): no evaluation
        return best, 0, []
    for direction in (1, -1):
        e, misses = best + direction, 0
        while allowed[0] <= e <= allowed[-1] and misses < SEARCH_MISSES:
            if loss_at(e) < loss_at(best):
                best, misses = e, 0
            else:
                misses += 1
            e += direction
    _, model, integers = tried[best]
    return best, model, integers


def search_steps(modules: dict[str, nn.Module],
                 evaluate: Callable[[str], tuple[float, float]], lmbda: float,
                 num_pixels: int, prior: Prior | None = None
                 ) -> dict[tuple[str, str], GroupCoding]:
    """Greedy RD choice of every group's step, module after module; leaves the
    modules quantised. `evaluate(module)` returns (mse, latent bits) with the
    current parameters; the module name says which part changed (the caller
    may cache the rest)."""
    groups = parameter_groups(modules)
    originals = {id(p): p.detach().clone() for _, _, params in groups for p in params}
    chosen: dict[tuple[str, str], GroupCoding] = {}
    bits_of: dict[tuple[str, str], float] = {}
    for module, kind, params in groups:
        other = sum(b for key, b in bits_of.items() if key != (module, kind))
        names = _group_names(modules, module, params)
        exponent, model, integers = _search_group(module, kind, params, names, originals,
                                                  evaluate, lmbda, num_pixels, other, prior)
        _assign(params, integers, exponent)
        chosen[(module, kind)] = GroupCoding(exponent, model)
        bits_of[(module, kind)] = _coded_bits(integers, prior, module, names, exponent)[1]
    return chosen


def encode_parameters(modules: dict[str, nn.Module],
                      coding: dict[tuple[str, str], GroupCoding], prior: Prior | None = None
                      ) -> bytes:
    """The parameter stream of already quantised modules (differences from
    `prior` where one is given)."""
    groups = []
    for module, kind, params in parameter_groups(modules):
        c = coding[(module, kind)]
        flat = _flat(quantized_integers(params, c.exponent, None))
        names = _group_names(modules, module, params)
        groups.append((_residuals(flat, prior, module, names, c.exponent), c.model))
    return encode_groups(groups)


def load_parameters(modules: dict[str, nn.Module], integers: dict[str, ModuleIntegers]
                    ) -> None:
    """Set the networks' parameters to what `parameters.read_parameters` read
    (integer * 2**-exponent, in each parameter's dtype)."""
    with torch.no_grad():
        for module, named in modules.items():
            for name, p in named.named_parameters():
                values, exponent = integers[module][name]
                p.copy_(torch.from_numpy(np.asarray(values, np.float64) * 2.0**-exponent)
                        .reshape(p.shape).to(p.dtype))

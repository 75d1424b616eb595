"""The two ways of computing SegPIC's entropy parameters, behind one interface
that `model.SegPIC.compress` and `decompress` call step for step:

- `ExactEntropyPath` (files flagged `exact_entropy`, every new file): integer-
  exact fixed-point networks (`exact_entropy`, `fixed_point`) and tables from
  `exact_math`. The means, scales and probability tables are the same bits on
  every machine, so such a file decodes to the same symbols everywhere.
- `FloatEntropyPath` (files without the flag): float64 copies of the modules,
  as every earlier version computed them. Their last bits depend on the BLAS
  kernels of the machine; it is kept so that those files decode as they did.

What `hyper` returns is opaque to the caller ("params": the means and scales,
and on the exact path the ChARM's state for one image, `exact_charm`); it hands
them back to `slice_params` and `finish_slice`, slice after slice, and only asks
a path for the scale table's standard deviations and for float64 values (the
mean that the encoder subtracts, the prototypes its hyper-analysis reads, y^
for the synthesis).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...entropy.entropy_models import (
    DiscreteFactorized,
    ExactScaleTable,
    ScaleTable,
    float64_copy,
)
from .conv_bands import band_convolutions
from .exact_charm import ExactCharm, SliceContext
from .exact_entropy import ExactHyperSynthesis, ExactPrototypeSynthesis
from .fixed_point import FRAC_BITS, Arena, to_float
from .regions import Partition


class FloatEntropyPath:
    """float64 copies of the entropy-parameter modules (files without the flag)."""

    exact = False

    def __init__(self, model: nn.Module):
        entropy = nn.ModuleDict({"entropy_prototypes": model.entropy_prototypes,
                                 "hyperprior": model.hyperprior, "charm": model.charm})
        self.modules = band_convolutions(float64_copy(entropy))
        self.p_transform = DiscreteFactorized(model.transform_prototypes.density)
        self.p_entropy = DiscreteFactorized(model.entropy_prototypes.density)
        self.z = DiscreteFactorized(model.hyperprior.density)
        self.scales = ScaleTable()

    def prototypes(self, symbols: torch.Tensor, q: float) -> torch.Tensor:
        return self.modules["entropy_prototypes"].synthesize(symbols, q)

    def hyper(self, z_sym: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
              q: float) -> tuple[torch.Tensor, torch.Tensor]:
        """-> params: (means, scales)."""
        return self.modules["hyperprior"].synthesize(z_sym.to(torch.float64), prototypes,
                                                     partition, q)

    def slice_params(self, i: int, params: tuple[torch.Tensor, torch.Tensor],
                     decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.modules["charm"].slice_params(i, *params, decoded)

    def finish_slice(self, i: int, params: tuple[torch.Tensor, torch.Tensor],
                     decoded: list[torch.Tensor], symbols: torch.Tensor, mu: torch.Tensor
                     ) -> torch.Tensor:
        return self.modules["charm"].finish_slice(i, params[0], decoded,
                                                  symbols.to(torch.float64) + mu)

    def stds(self, scale: torch.Tensor) -> np.ndarray:
        return self.scales.stds(scale)

    def values(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor of this path (prototypes, a mean, y^) as float64 values."""
        return t


class ExactEntropyPath:
    """Fixed-point entropy-parameter networks (files flagged `exact_entropy`)."""

    exact = True

    def __init__(self, model: nn.Module):
        self.prototype_synthesis = ExactPrototypeSynthesis(model.entropy_prototypes)
        arena = Arena()  # the fixed-point weights, in a few large buffers
        self.hyper_synthesis = ExactHyperSynthesis(model.hyperprior, arena)
        self.charm = ExactCharm(model.charm, arena)
        self.p_transform = DiscreteFactorized(model.transform_prototypes.density, exact=True)
        self.p_entropy = DiscreteFactorized(model.entropy_prototypes.density, exact=True)
        self.z = DiscreteFactorized(model.hyperprior.density, exact=True)
        self.scales = ExactScaleTable(FRAC_BITS)

    def prototypes(self, symbols: torch.Tensor, q: float) -> torch.Tensor:
        return self.prototype_synthesis(symbols, q)

    def hyper(self, z_sym: torch.Tensor, prototypes: torch.Tensor, partition: Partition,
              q: float) -> SliceContext:
        """-> params: the means and scales, and the ChARM's state for this image."""
        return self.charm.start(*self.hyper_synthesis(z_sym, prototypes, partition, q))

    def slice_params(self, i: int, params: SliceContext, decoded: list[torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.charm.slice_params(i, params, decoded)

    def finish_slice(self, i: int, params: SliceContext, decoded: list[torch.Tensor],
                     symbols: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return self.charm.finish_slice(i, params, decoded, symbols, mu)

    def stds(self, scale: torch.Tensor) -> np.ndarray:
        return self.scales.stds(scale)

    def values(self, t: torch.Tensor) -> torch.Tensor:
        return to_float(t)


EntropyPath = FloatEntropyPath | ExactEntropyPath


def entropy_path(model: nn.Module, exact: bool) -> EntropyPath:
    with torch.no_grad():
        return ExactEntropyPath(model) if exact else FloatEntropyPath(model)

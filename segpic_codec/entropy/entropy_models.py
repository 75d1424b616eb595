"""Probability models of the quantized latents, in their training form and in the
discrete form the range coder uses.

- `FactorizedDensity`: the non-parametric per-channel density of Balle et al. 2018
  (used for z and for the prototype latents). Training evaluates likelihoods of
  noisy values; coding tabulates a pmf per channel over a finite support.
- `gaussian_log_likelihood` and `ScaleTable`: the conditional Gaussian of y. Coding
  quantizes each predicted scale to a fixed log-spaced table so that encoder and
  decoder agree on the model even if the scale differs in the last bits.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import exact_math
from .range_coding import decode_factorized, encode_factorized

LOG_LIKELIHOOD_BOUND = math.log(1e-9)
SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 160


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it would raise x.

    A plain clamp has zero gradient below the bound: a scale (or likelihood) that
    falls under it could then never recover, and the model would keep a
    near-deterministic prediction for latents that are in fact not zero."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passthrough = (x >= ctx.bound) | (grad < 0)
        return grad * passthrough.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


def add_uniform_noise(x: torch.Tensor) -> torch.Tensor:
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


class FactorizedDensity(nn.Module):
    """Per-channel univariate density modelled by its cumulative (Balle 2018, App. 6.1).

    Inputs are (..., C) with channels last, so prototypes (R, C) and feature maps
    (after a permute) share one implementation.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3, 3),
                 init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        # x: (C, 1, n) -> (C, 1, n)
        logits = x
        for i, matrix in enumerate(self.matrices):
            logits = torch.matmul(F.softplus(matrix.to(x.dtype)), logits)
            logits = logits + self.biases[i].to(x.dtype)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i].to(x.dtype)) * torch.tanh(logits)
        return logits

    def log_likelihood(self, values: torch.Tensor) -> torch.Tensor:
        """log P(values - 0.5 < v < values + 0.5) per element; values (..., C)."""
        shape = values.shape
        v = values.reshape(-1, self.channels).t().unsqueeze(1)  # (C, 1, n)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        # evaluate in the tail that keeps precision (1 - sigmoid(a) = sigmoid(-a))
        sign = -torch.sign(lower + upper).detach()
        a, b = sign * upper, sign * lower
        hi, lo = torch.maximum(a, b), torch.minimum(a, b)
        log_lik = _log_diff(F.logsigmoid(hi), F.logsigmoid(lo))
        return log_lik.squeeze(1).t().reshape(shape)

    @torch.no_grad()
    def pmf_table(self, radius: int = 64, tail_mass: float = 1e-8) -> tuple[np.ndarray, int]:
        """Tabulate the pmf of every channel on integers [lo, hi] (float64).

        The support is the smallest range around 0 that holds all but `tail_mass`
        of every channel's density, within [-radius, radius]. Returns (pmf of
        shape (C, hi - lo + 1), lo). Values outside the support are clamped to it
        by the encoder, so the support must be derived identically everywhere:
        this runs in float64 on the CPU from the stored weights.
        """
        cpu = float64_copy(self)
        grid = torch.arange(-radius, radius + 1, dtype=torch.float64)
        v = grid.view(1, 1, -1).expand(self.channels, 1, -1)
        lower = cpu._logits_cumulative(v - 0.5)
        upper = cpu._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper)
        pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).squeeze(1)
        below = torch.sigmoid(lower.squeeze(1))  # P(v < k - 0.5)
        above = torch.sigmoid(-upper.squeeze(1))  # P(v > k + 0.5)
        # the grid indices where every channel's tail beyond them is negligible:
        # a prefix (lower tail) and a suffix (upper tail) of the grid
        lo_ok = (below <= tail_mass / 2).all(dim=0)
        hi_ok = (above <= tail_mass / 2).all(dim=0)
        lo_idx = int(torch.nonzero(lo_ok).max()) if lo_ok.any() else 0
        hi_idx = int(torch.nonzero(hi_ok).min()) if hi_ok.any() else grid.numel() - 1
        lo_idx = min(lo_idx, radius)
        hi_idx = max(hi_idx, radius)
        table = pmf[:, lo_idx : hi_idx + 1].numpy().astype(np.float64)
        return table, int(grid[lo_idx])

    def exact_pmf_table(self, radius: int = 64, tail_mass: float = 1e-8
                        ) -> tuple[np.ndarray, int]:
        """`pmf_table` computed with `exact_math` in a fixed order: the same bits on
        every machine (the table's float pmf decides the coder's integer one)."""
        return _tabulate(self._exact_cumulative, self.channels, radius, tail_mass)

    def _exact_cumulative(self, x: np.ndarray) -> np.ndarray:
        """`_logits_cumulative` of x (C, n) with exact_math and explicit sums."""
        logits = x[:, None, :]  # (C, d, n)
        for i, matrix in enumerate(self.matrices):
            m = exact_math.softplus(matrix.detach().double().cpu().numpy())  # (C, out, in)
            out = m[:, :, :1] * logits[:, None, 0, :]
            for j in range(1, m.shape[2]):
                out = out + m[:, :, j : j + 1] * logits[:, None, j, :]
            logits = out + self.biases[i].detach().double().cpu().numpy()
            if i < len(self.factors):
                factor = exact_math.tanh(self.factors[i].detach().double().cpu().numpy())
                logits = logits + factor * exact_math.tanh(logits)
        return logits[:, 0, :]


def _tabulate(cumulative, channels: int, radius: int, tail_mass: float
              ) -> tuple[np.ndarray, int]:
    """`FactorizedDensity.pmf_table`'s support and pmf from an exact cumulative
    (logits of x (C, n) -> (C, n)), in exact_math."""
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    # the cumulative at every bin edge k - 1/2, once: bin k's upper edge is bin k + 1's
    # lower one (the cumulative is elementwise along the grid: the same bits)
    edges = np.arange(-radius, radius + 2, dtype=np.float64) - 0.5
    at_edges = cumulative(np.broadcast_to(edges, (channels, edges.size)))
    lower, upper = at_edges[:, :-1], at_edges[:, 1:]
    sign = -np.sign(lower + upper)
    # sigmoid(+-edge) from one exp; sigmoid(sign * edge) picks from them (sign 0:
    # sigmoid(0) = 1/2, as exact_math.sigmoid gives it)
    pos, neg = exact_math.sigmoid_pair(at_edges)

    def signed(n: slice) -> np.ndarray:
        return np.where(sign > 0, pos[:, n], np.where(sign < 0, neg[:, n], 0.5))

    pmf = np.abs(signed(np.s_[1:]) - signed(np.s_[:-1]))
    lo_ok = (pos[:, :-1] <= tail_mass / 2).all(axis=0)
    hi_ok = (neg[:, 1:] <= tail_mass / 2).all(axis=0)
    lo_idx = int(np.nonzero(lo_ok)[0].max()) if lo_ok.any() else 0
    hi_idx = int(np.nonzero(hi_ok)[0].min()) if hi_ok.any() else grid.size - 1
    lo_idx, hi_idx = min(lo_idx, radius), max(hi_idx, radius)
    return np.ascontiguousarray(pmf[:, lo_idx : hi_idx + 1]), int(grid[lo_idx])


def float64_copy(module: nn.Module, device: torch.device | str = "cpu") -> nn.Module:
    """A float64 copy of `module` on `device`, in eval mode. The float64 tensors are
    made first and handed to deepcopy (its memo), so the float32 weights are never
    cloned only to be converted: half the allocations of deepcopy + .to()."""
    memo: dict[int, object] = {}
    for tensor in (*module.parameters(), *module.buffers()):
        dtype = torch.float64 if tensor.is_floating_point() else tensor.dtype
        new = tensor.detach().to(device=device, dtype=dtype, copy=True)
        memo[id(tensor)] = (nn.Parameter(new, requires_grad=tensor.requires_grad)
                            if isinstance(tensor, nn.Parameter) else new)
    return copy.deepcopy(module, memo).eval()


def _log_diff(log_hi: torch.Tensor, log_lo: torch.Tensor) -> torch.Tensor:
    """log(exp(log_hi) - exp(log_lo)) for log_hi >= log_lo, bounded below (see
    `lower_bound`): in log space tail probabilities keep their gradients where
    the plain difference would underflow to zero."""
    gap = (log_lo - log_hi).clamp_max(-1e-6)
    return lower_bound(log_hi + torch.log1p(-torch.exp(gap)), LOG_LIKELIHOOD_BOUND)


def gaussian_log_likelihood(values: torch.Tensor, means: torch.Tensor, scales: torch.Tensor
                            ) -> torch.Tensor:
    """log P(values - 0.5 < N(means, scales^2) < values + 0.5), on the lower tail
    side of the mean where it is precise."""
    scales = lower_bound(scales, SCALE_MIN)
    v = torch.abs(values - means)
    return _log_diff(torch.special.log_ndtr((0.5 - v) / scales),
                     torch.special.log_ndtr((-0.5 - v) / scales))


class ScaleTable:
    """Log-spaced standard deviations from SCALE_MIN to SCALE_MAX; coding uses the
    table entry nearest (in log) to the predicted scale."""

    def __init__(self, levels: int = SCALE_LEVELS):
        self.levels = levels
        self.log_min = math.log(SCALE_MIN)
        self.step = (math.log(SCALE_MAX) - self.log_min) / (levels - 1)
        self.values = np.exp(self.log_min + self.step * np.arange(levels, dtype=np.float64))

    def index(self, scales: torch.Tensor) -> np.ndarray:
        s = scales.detach().to(device="cpu", dtype=torch.float64).clamp_min(SCALE_MIN).numpy()
        idx = np.rint((np.log(s) - self.log_min) / self.step)
        return np.clip(idx, 0, self.levels - 1).astype(np.int64)

    def stds(self, scales: torch.Tensor) -> np.ndarray:
        return self.values[self.index(scales)]


class ExactScaleTable:
    """`ScaleTable` for scales given as integers at scale 2^-frac_bits: the levels
    and the thresholds between them come from `exact_math`, and a scale's level is
    found by integer comparisons, so it is the same on every machine. A scale at
    or above the geometric mean of two levels takes the upper one (the nearest in
    log, as in `ScaleTable`)."""

    def __init__(self, frac_bits: int, levels: int = SCALE_LEVELS):
        log_min = exact_math.log(SCALE_MIN)
        step = (exact_math.log(SCALE_MAX) - log_min) / (levels - 1)
        self.values = exact_math.exp(log_min + step * np.arange(levels, dtype=np.float64))
        middles = exact_math.exp(log_min + step * (np.arange(levels - 1) + 0.5))
        self.thresholds = np.ceil(np.ldexp(middles, frac_bits)).astype(np.int64)

    def index(self, scales: torch.Tensor) -> np.ndarray:
        s = scales.detach().to(device="cpu", dtype=torch.int64).numpy()
        return np.searchsorted(self.thresholds, s, side="right")

    def stds(self, scales: torch.Tensor) -> np.ndarray:
        return self.values[self.index(scales)]


class DiscreteFactorized:
    """The coding form of a `FactorizedDensity`: per-channel pmf rows over a finite
    integer support [lo, lo + K). Symbols are arrays of shape (n, C)."""

    def __init__(self, density: FactorizedDensity, exact: bool = False):
        self.table, self.lo = density.exact_pmf_table() if exact else density.pmf_table()
        self.channels = self.table.shape[0]
        self.hi = self.lo + self.table.shape[1] - 1

    def clamp(self, symbols: torch.Tensor) -> torch.Tensor:
        return symbols.clamp(self.lo, self.hi)

    def encode(self, symbols: torch.Tensor) -> bytes:
        sym = symbols.detach().to("cpu", torch.int64).numpy()
        if sym.ndim != 2 or sym.shape[1] != self.channels:
            raise ValueError("factorized symbols must have shape (n, channels)")
        return encode_factorized(sym - self.lo, self.table)

    def decode(self, data: bytes, n: int) -> torch.Tensor:
        sym = decode_factorized(data, self.table, n).astype(np.int64) + self.lo
        return torch.from_numpy(sym)

"""The auto-regressive entropy model (ARM): a float version for training and an
exact integer version for coding.

Each latent is modelled by a Laplace whose mean and log-scale an MLP predicts
from 16 causal neighbours in the same grid (MoRIC: width 16, two residual
hidden layers; ReLU as in Cool-Chic, so the integer version needs no table for
the activation; plus Cool-Chic's parallel linear "stabiliser" so the mean can
follow the neighbours linearly from the start).

Training gathers the neighbours of every latent of every grid with 16 shifted
slices of the flattened canvas (see `canvas`), in a channels-first (16, N)
layout where each layer is one matrix product.

Coding runs the exact fixed-point version, `arm_integer.IntegerArm` (torch-free).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bitstream.arm_integer import ARM_WIDTH, CONTEXT_SIZE
from ..bitstream.canvas import Canvas
from ..bitstream.pmf_table import LOG_SCALE_MAX, LOG_SCALE_MIN, LOG_SCALE_OFFSET, PROBABILITY_FLOOR


class Arm(nn.Module):
    """Float ARM for training. Parameters (all sent): w1, b1, w2, b2 (residual
    16 -> 16 layers, stored without their identity), w_out, b_out (16 -> 2) and
    w_linear (16 -> 2, no bias)."""

    def __init__(self, generator: torch.Generator | None = None):
        super().__init__()
        n = CONTEXT_SIZE
        self.w1 = nn.Parameter(torch.zeros(ARM_WIDTH, n))
        self.b1 = nn.Parameter(torch.zeros(ARM_WIDTH))
        self.w2 = nn.Parameter(torch.zeros(ARM_WIDTH, ARM_WIDTH))
        self.b2 = nn.Parameter(torch.zeros(ARM_WIDTH))
        # Cool-Chic's initialisation: residual layers start as identities, the
        # output layer with small random weights N(0, 1 / out**4)
        self.w_out = nn.Parameter(torch.randn(2, ARM_WIDTH, generator=generator) / 4.0)
        self.b_out = nn.Parameter(torch.zeros(2))
        self.w_linear = nn.Parameter(torch.zeros(2, n))
        self.register_buffer("eye", torch.eye(ARM_WIDTH), persistent=False)

    def forward(self, context: Tensor) -> Tensor:
        """(16, N) contexts -> (2, N) raw outputs (mean, log-scale + 4)."""
        h = F.relu(torch.addmm(self.b1[:, None], self.w1 + self.eye, context))
        h = F.relu(torch.addmm(self.b2[:, None], self.w2 + self.eye, h))
        out = torch.addmm(self.b_out[:, None], self.w_out, h)
        return torch.addmm(out, self.w_linear, context)


def gather_contexts(flat_canvas: Tensor, canvas: Canvas) -> Tensor:
    """(16, M) contexts of canvas positions query_range[0] .. query_range[1] - 1."""
    start, stop = canvas.query_range
    return torch.stack([flat_canvas[start + o: stop + o] for o in canvas.offsets.tolist()])


def laplace_rate_bits(x: Tensor, mean: Tensor, log_scale_raw: Tensor) -> Tensor:
    """-log2 P(x) of integer (or soft-rounded) x under the quantised Laplace,
    floored like the coder's table."""
    log_scale = torch.clamp(log_scale_raw - LOG_SCALE_OFFSET, LOG_SCALE_MIN, LOG_SCALE_MAX)
    inv_scale = torch.exp(-log_scale)
    d = (x - mean).abs()
    # P = F(d + 1/2) - F(d - 1/2) with F the Laplace CDF, folded on d >= 0:
    # F(d + 1/2) = 1 - u / 2 and F(d - 1/2) = 1 - t / 2 (d >= 1/2) or t / 2,
    # with u = exp(-(d + 1/2) / b) and t = exp(-|d - 1/2| / b); both
    # exponents are <= 0, so neither branch overflows (no NaN gradients).
    u = torch.exp(-(d + 0.5) * inv_scale)
    t = torch.exp(-(d - 0.5).abs() * inv_scale)
    lower = torch.where(d < 0.5, 1.0 - 0.5 * t, 0.5 * t)
    probability = torch.clamp_min(lower - 0.5 * u, PROBABILITY_FLOOR)
    return -torch.log2(probability)


def canvas_rate_bits(arm: Arm, quantized_canvas: Tensor, canvas: Canvas,
                     latent_positions: Tensor) -> Tensor:
    """Bits of every latent of every grid, in `canvas.latent_index` order.

    `latent_positions` = latent_index - query_range[0], as a tensor on the
    canvas' device."""
    flat = quantized_canvas.reshape(-1)
    raw = arm(gather_contexts(flat, canvas))
    raw = raw.index_select(1, latent_positions)
    x = flat[latent_positions + canvas.query_range[0]]
    return laplace_rate_bits(x, raw[0], raw[1])


def arm_macs_per_latent() -> int:
    return CONTEXT_SIZE * ARM_WIDTH + ARM_WIDTH * ARM_WIDTH + 2 * ARM_WIDTH + 2 * CONTEXT_SIZE


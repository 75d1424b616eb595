"""The training rate of all latents, fused and cache-blocked (CPU fast path).

`canvas_rate_bits` in `arm` is the plain autograd version. On a CPU the ARM
works on (16, ~600k) tensors for a 768x512 image, each 38 MB: every
elementwise op and product streams them through memory, and autograd saves
them all. Here the canvas is cut into blocks of a few thousand positions; each
block's contexts, hidden layers and rates live in cache, forward keeps nothing
but the inputs, and backward recomputes each block and applies the chain rule
by hand (no autograd graph). A training step that wants the bits and their
gradients at once takes them from one pass (`fused_rate_bits_and_grads`),
without that second forward. Same mathematics as `laplace_rate_bits`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..bitstream.canvas import Canvas
from ..bitstream.pmf_table import LOG_SCALE_MAX, LOG_SCALE_MIN, LOG_SCALE_OFFSET, PROBABILITY_FLOOR
from .arm import Arm

BLOCK = 16384
_INV_LN2 = 1.0 / math.log(2.0)


def _rate_terms(x: Tensor, mean: Tensor, raw_log_scale: Tensor, need_grad: bool
                ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Bits of each latent and, if asked, d bits / d (x - mean) and d bits / d raw."""
    shifted = raw_log_scale - LOG_SCALE_OFFSET
    log_scale = shifted.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
    inv_scale = torch.exp(-log_scale)
    diff = x - mean
    d = diff.abs()
    dm = d - 0.5
    u = torch.exp(-(d + 0.5) * inv_scale)
    t = torch.exp(-dm.abs() * inv_scale)
    near = d < 0.5
    probability = torch.where(near, 1.0 - 0.5 * t, 0.5 * t) - 0.5 * u
    floored = probability <= PROBABILITY_FLOOR
    bits = -torch.log2(probability.clamp_min(PROBABILITY_FLOOR))
    if not need_grad:
        return bits, None, None
    # d bits / d P = -1 / (P ln 2), zero where the floor is active
    dbits_dp = torch.where(floored, 0.0, -_INV_LN2 / probability.clamp_min(PROBABILITY_FLOOR))
    # dP/dd = (u - t) / (2 b); dP/dlog b = (+-t |d - 1/2| - u (d + 1/2)) / (2 b)
    half_inv = 0.5 * inv_scale
    dp_dd = (u - t) * half_inv
    signed_t = torch.where(near, -t, t)
    dp_dlog = (signed_t * dm.abs() - u * (d + 0.5)) * half_inv
    in_range = (shifted >= LOG_SCALE_MIN) & (shifted <= LOG_SCALE_MAX)
    d_diff = dbits_dp * dp_dd * torch.sign(diff)
    d_raw = torch.where(in_range, dbits_dp * dp_dlog, 0.0)
    return bits, d_diff, d_raw


def _augmented(weight: Tensor, bias: Tensor, identity: bool) -> Tensor:
    """[W (+ I) | b]: the bias becomes one more column, multiplied by a row of
    ones kept at the bottom of each activation buffer (addmm would first copy
    the broadcast bias over the whole output)."""
    if identity:
        weight = weight + torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return torch.cat([weight, bias[:, None]], dim=1)


class _Buffers:
    """Per-block activations; the last row of c, h1 and h2 holds ones."""

    def __init__(self, like: Tensor, width: int, n: int):
        self.c = like.new_ones(width + 1, n)
        self.h1 = like.new_ones(width + 1, n)
        self.h2 = like.new_ones(width + 1, n)
        self.a1 = like.new_empty(width, n)
        self.a2 = like.new_empty(width, n)

    def forward(self, flat: Tensor, s: int, e: int, offsets: tuple[int, ...],
                m1: Tensor, m2: Tensor, mo: Tensor, w_linear: Tensor) -> Tensor:
        n = e - s
        c, a1, h1, a2, h2 = (t[..., :n] for t in (self.c, self.a1, self.h1, self.a2, self.h2))
        width = a1.shape[0]
        torch.stack([flat[s + o: e + o] for o in offsets], out=self.c[:width, :n]) \
            if n == self.c.shape[1] else c[:width].copy_(
                torch.stack([flat[s + o: e + o] for o in offsets]))
        torch.mm(m1, c, out=a1)
        torch.clamp_min(a1, 0, out=h1[:width])
        torch.mm(m2, h1, out=a2)
        torch.clamp_min(a2, 0, out=h2[:width])
        return torch.mm(mo, h2).addmm_(w_linear, c[:width])


def _rate_pass(flat: Tensor, mask: Tensor, offsets: tuple[int, ...], start: int, stop: int,
               params: tuple[Tensor, ...], weight: Tensor | float | None, want_flat: bool
               ) -> tuple[Tensor, Tensor | None, tuple[Tensor, ...] | None]:
    """One pass over the blocks: the total bits and, with a weight, the
    gradients of weight * total by the flat canvas (if want_flat) and by the
    ARM parameters (w1, b1, w2, b2, w_out, b_out, w_linear)."""
    w1, b1, w2, b2, w_out, b_out, w_linear = params
    width = w1.shape[0]
    m1, m2 = _augmented(w1, b1, True), _augmented(w2, b2, True)
    mo = _augmented(w_out, b_out, False)
    buffers = _Buffers(flat, width, min(BLOCK, stop - start))
    total = flat.new_zeros(())
    if weight is None:
        for s in range(start, stop, BLOCK):
            e = min(s + BLOCK, stop)
            out = buffers.forward(flat, s, e, offsets, m1, m2, mo, w_linear)
            bits, _, _ = _rate_terms(flat[s:e], out[0], out[1], False)
            total += torch.dot(bits, mask[s:e])
        return total, None, None
    g_m1, g_m2, g_mo = torch.zeros_like(m1), torch.zeros_like(m2), torch.zeros_like(mo)
    g_wl = torch.zeros_like(w_linear)
    grad_flat = torch.zeros_like(flat) if want_flat else None
    for s in range(start, stop, BLOCK):
        e = min(s + BLOCK, stop)
        n = e - s
        out = buffers.forward(flat, s, e, offsets, m1, m2, mo, w_linear)
        c, a1, h1, a2, h2 = (t[..., :n] for t in (buffers.c, buffers.a1, buffers.h1,
                                                   buffers.a2, buffers.h2))
        bits, d_diff, d_raw = _rate_terms(flat[s:e], out[0], out[1], True)
        total += torch.dot(bits, mask[s:e])
        block_weight = mask[s:e] * weight
        d_diff *= block_weight
        d_raw *= block_weight
        g_out = torch.stack([-d_diff, d_raw])
        if grad_flat is not None:
            grad_flat[s:e] += d_diff
        g_mo.addmm_(g_out, h2.T)
        g_wl.addmm_(g_out, c[:width].T)
        g_a2 = torch.ops.aten.threshold_backward(w_out.T @ g_out, a2, 0)
        g_m2.addmm_(g_a2, h1.T)
        g_a1 = torch.ops.aten.threshold_backward(m2[:, :width].T @ g_a2, a1, 0)
        g_m1.addmm_(g_a1, c.T)
        if grad_flat is not None:
            g_c = (m1[:, :width].T @ g_a1).addmm_(w_linear.T, g_out)
            for k, o in enumerate(offsets):
                grad_flat[s + o: e + o] += g_c[k]
    grads = (g_m1[:, :width], g_m1[:, width], g_m2[:, :width], g_m2[:, width],
             g_mo[:, :width], g_mo[:, width], g_wl)
    return total, grad_flat, grads


class _ArmRate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat: Tensor, mask: Tensor, offsets: tuple[int, ...], start: int,
                stop: int, *params: Tensor) -> Tensor:
        ctx.save_for_backward(flat, mask, *params)
        ctx.geometry = (offsets, start, stop)
        return _rate_pass(flat, mask, offsets, start, stop, params, None, False)[0]

    @staticmethod
    def backward(ctx, grad_total: Tensor):
        flat, mask, *params = ctx.saved_tensors
        offsets, start, stop = ctx.geometry
        # recomputes each block's forward: forward kept nothing but the inputs
        _, grad_flat, grads = _rate_pass(flat, mask, offsets, start, stop, tuple(params),
                                         grad_total, ctx.needs_input_grad[0])
        return (grad_flat, None, None, None, None, *grads)


def _arm_parameters(arm: Arm) -> tuple[Tensor, ...]:
    return (arm.w1, arm.b1, arm.w2, arm.b2, arm.w_out, arm.b_out, arm.w_linear)


def fused_rate_bits(arm: Arm, quantized_canvas: Tensor, canvas: Canvas, mask: Tensor) -> Tensor:
    """Total bits of all latents (a scalar), differentiable w.r.t. the canvas and
    the ARM parameters. `mask` is the flat latent mask of the canvas."""
    start, stop = canvas.query_range
    return _ArmRate.apply(quantized_canvas.reshape(-1), mask, tuple(canvas.offsets.tolist()),
                          start, stop, *_arm_parameters(arm))


@torch.no_grad()
def fused_rate_bits_and_grads(arm: Arm, quantized_canvas: Tensor, canvas: Canvas, mask: Tensor,
                              weight: float, want_canvas: bool
                              ) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """(total bits, gradient of weight * bits by the canvas (its shape; None
    unless want_canvas), by the ARM parameters (in `arm.parameters()` order)),
    in one pass: what autograd through `fused_rate_bits` gives, without the
    forward pass that its backward computes again."""
    start, stop = canvas.query_range
    total, grad_flat, grads = _rate_pass(
        quantized_canvas.reshape(-1), mask, tuple(canvas.offsets.tolist()), start, stop,
        tuple(p.detach() for p in _arm_parameters(arm)), weight, want_canvas)
    assert grads is not None
    grad_canvas = None if grad_flat is None else grad_flat.reshape(quantized_canvas.shape)
    return total, grad_canvas, list(grads)

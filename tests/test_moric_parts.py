"""MoRIC building blocks: exact integer ARM, fused rate, canvas geometry,
tables, exp-Golomb codes, upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segpic_codec.moric.bitstream.arm_integer import (
    BIAS_FRACTION_BITS,
    WEIGHT_FRACTION_BITS,
    IntegerArm,
)
from segpic_codec.moric.bitstream.canvas import CONTEXT_OFFSETS, WAVE_SLOPE, Canvas
from segpic_codec.moric.bitstream.expgolomb import BitReader, BitWriter, code_length
from segpic_codec.moric.bitstream.pmf_table import (
    LOG_SCALE_MIN,
    NUM_LOG_SCALES,
    build_table,
    exp_deterministic,
)
from segpic_codec.moric.networks.arm import Arm, canvas_rate_bits
from segpic_codec.moric.networks.arm_rate import fused_rate_bits
from segpic_codec.moric.networks.model import Architecture, MoricModel
from segpic_codec.moric.networks.upsampling import _Upsample1d, upsample_1d


def _random_arm(seed: int) -> tuple[Arm, dict[str, tuple[np.ndarray, int]]]:
    """An Arm with random parameters on 2**-8 / 2**-12 grids, and their integers."""
    rng = np.random.default_rng(seed)
    arm = Arm()
    ints = {}
    for name, p in arm.named_parameters():
        e = 12 if name.startswith("b") else 8
        values = rng.integers(-2**e // 2, 2**e // 2, size=tuple(p.shape))
        ints[name] = (values, e)
        with torch.no_grad():
            p.copy_(torch.from_numpy(values * 2.0**-e))
    return arm, ints


def _int64_reference(ints: dict, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-point ARM in plain int64 (slow, obviously exact)."""
    def w(name: str, bits: int) -> np.ndarray:
        values, e = ints[name]
        return values.astype(np.int64) << (bits - e)

    one = 1 << WEIGHT_FRACTION_BITS
    x = contexts.astype(np.int64) << WEIGHT_FRACTION_BITS
    w1 = w("w1", WEIGHT_FRACTION_BITS) + np.eye(16, dtype=np.int64) * one
    w2 = w("w2", WEIGHT_FRACTION_BITS) + np.eye(16, dtype=np.int64) * one
    h = np.clip((x @ w1.T + w("b1", BIAS_FRACTION_BITS)) >> 16, 0, 1 << 28)
    h = np.clip((h @ w2.T + w("b2", BIAS_FRACTION_BITS)) >> 16, 0, 1 << 28)
    out = h @ w("w_out", 16).T + x @ w("w_linear", 16).T + w("b_out", BIAS_FRACTION_BITS)
    out >>= BIAS_FRACTION_BITS - 8
    return out[:, 0], out[:, 1]


def test_integer_arm_is_exact_and_close_to_float():
    arm, ints = _random_arm(0)
    rng = np.random.default_rng(1)
    contexts = rng.integers(-40, 40, size=(5000, 16))
    mean, log_scale = IntegerArm(ints)(contexts.astype(np.float64))
    ref_mean, ref_log_scale = _int64_reference(ints, contexts)
    np.testing.assert_array_equal(mean, ref_mean)
    np.testing.assert_array_equal(log_scale, ref_log_scale)
    with torch.no_grad():
        out = arm(torch.from_numpy(contexts.T.astype(np.float64)).float()).double().numpy()
    assert np.max(np.abs(mean / 256 - out[0])) < 0.05
    assert np.max(np.abs(log_scale / 256 - out[1])) < 0.05


def test_fused_rate_matches_autograd():
    torch.manual_seed(0)
    model = MoricModel(21, 37, Architecture()).double()
    with torch.no_grad():
        model.latents.values.normal_(0, 0.15)
        for p in model.arm.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    plain = canvas_rate_bits(model.arm, model.latents.quantized("softround", 0.3, 0.0),
                             model.canvas, model.latent_positions).sum()
    fused = fused_rate_bits(model.arm, model.latents.quantized("softround", 0.3, 0.0),
                            model.canvas, model.latents.mask.reshape(-1))
    params = [model.latents.values, *model.arm.parameters()]
    for a, b in zip(torch.autograd.grad(plain, params), torch.autograd.grad(fused, params),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert abs((plain - fused).item()) < 1e-6


@pytest.mark.parametrize("want_canvas", [True, False])
def test_one_pass_rate_and_gradients_equal_autograd_bit_for_bit(want_canvas):
    """The training step's one pass gives what autograd through fused_rate_bits
    gives (the same blocks, operations and order), float32 as in training."""
    torch.manual_seed(2)
    model = MoricModel(40, 70, Architecture())
    with torch.no_grad():
        model.latents.values.normal_(0, 0.15)
        for p in model.arm.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    q = model.latents.quantized("softround", 0.3, 0.0).detach()
    mask, weight = model.latents.mask.reshape(-1), 3e-6
    leaf = q.clone().requires_grad_(True)
    bits = fused_rate_bits(model.arm, leaf, model.canvas, mask)
    expected = torch.autograd.grad(bits * weight, [leaf, *model.arm.parameters()])
    total, grad_canvas, grads = model.rate_bits_and_grads(q, weight, want_canvas)
    assert torch.equal(total, bits.detach())
    assert (grad_canvas is not None) == want_canvas
    if want_canvas:
        assert torch.equal(grad_canvas, expected[0])
    assert len(grads) == len(expected) - 1
    for a, b in zip(grads, expected[1:], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("size", [(1, 1), (2, 9), (13, 4), (65, 130)])
def test_wave_order_is_causal(size):
    canvas = Canvas(*size)
    positions, starts, _ = canvas.wave_order()
    wave_of = np.full(canvas.numel, -1)
    for w in range(len(starts) - 1):
        wave_of[positions[starts[w]:starts[w + 1]]] = w
    assert np.array_equal(np.sort(positions), np.sort(canvas.latent_index))
    cols = canvas.shape[1]
    for dr, dc in CONTEXT_OFFSETS:  # every neighbour is a margin or an earlier wave
        neighbour = wave_of[positions + dr * cols + dc]
        own = wave_of[positions]
        assert np.all((neighbour == -1) | (neighbour < own))
    assert WAVE_SLOPE == 3


def test_table_is_deterministic_and_normalised():
    x = -np.linspace(0, 50, 1001)
    np.testing.assert_allclose(exp_deterministic(x), np.exp(x), rtol=1e-14)
    table = build_table(40)
    sums = table.sum(axis=2)  # rows hold offsets -40 .. 40 only: wide Laplaces lose tails
    assert np.all(sums < 1.0 + 81 * 2**-16)
    narrow = (LOG_SCALE_MIN + (np.arange(NUM_LOG_SCALES) + 0.5) / 16) < 1.0
    assert np.all(sums[:, narrow] > 0.999)


def test_expgolomb_round_trip():
    rng = np.random.default_rng(2)
    values = rng.integers(-3000, 3000, size=500)
    for order in (0, 3, 9):
        writer = BitWriter()
        writer.write_signed(values, order)
        data = writer.getvalue()
        assert len(data) == -(-code_length(values, order) // 8)
        reader = BitReader(data)
        np.testing.assert_array_equal(reader.read_signed(values.size, order), values)
        reader.check_end()


def test_upsampling_backward_matches_autograd():
    torch.manual_seed(3)
    for dim in (1, 2):
        x = torch.randn(3, 6, 7, dtype=torch.float64, requires_grad=True)
        taps = torch.randn(4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, t, d=dim: _Upsample1d.apply(a, t, d),
                                        (x, taps))
        torch.testing.assert_close(_Upsample1d.apply(x, taps, dim), upsample_1d(x, taps, dim))


@pytest.mark.parametrize("height,width", [(5, 7), (1, 4), (3, 1)])
def test_conv3x3_backward_matches_autograd(height, width):
    from segpic_codec.moric.networks.synthesis import _Conv3x3Replicate

    torch.manual_seed(4)
    image = torch.randn(1, 3, height, width, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Conv3x3Replicate.apply, (image, weight, bias))
    plain = torch.nn.functional.conv2d(
        torch.nn.functional.pad(image, (1, 1, 1, 1), mode="replicate"), weight, bias)
    torch.testing.assert_close(_Conv3x3Replicate.apply(image, weight, bias), plain)

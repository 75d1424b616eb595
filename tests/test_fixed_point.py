"""The exact entropy path (segpic/networks/fixed_point.py, exact_entropy.py,
entropy_paths.py): the same entropy parameters whatever the summation order, band
plan, thread count or MKL mode, with every convolution's sums provably exact."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SHIPPED, random_image
from torch import nn

from segpic_codec.entropy import exact_math
from segpic_codec.entropy.activation_tables import SUBSTEP
from segpic_codec.entropy.entropy_models import ExactScaleTable
from segpic_codec.segpic.config import get_config
from segpic_codec.segpic.networks import conv_bands
from segpic_codec.segpic.networks.charm import ChannelARCodec
from segpic_codec.segpic.networks.entropy_paths import ExactEntropyPath
from segpic_codec.segpic.networks.fixed_point import (
    ACT_LIMIT,
    FRAC_BITS,
    FixedConv,
    fixed_layer,
    gelu_table,
    sigmoid_table,
    tanh_table,
)
from segpic_codec.segpic.networks.hyperprior import HyperpriorCodec

# sha256 of the GELU, sigmoid and tanh tables and of the scale levels and
# thresholds: they must be these bits on every machine (exact_math uses no libm)
TABLES_SHA256 = "9a8ed40825dd6325640ab3aa3b6663950ef45cce2831fadbdd54e8085f90ba5b"


def test_exact_math_is_accurate():
    x = np.linspace(-30, 30, 20001)
    assert np.max(np.abs(exact_math.exp(x) / np.exp(x) - 1)) < 1e-15
    y = np.exp(np.linspace(-200, 200, 5001))
    assert np.max(np.abs(exact_math.log(y) - np.log(y))) < 1e-13
    z = np.linspace(-7, 7, 4001)
    assert max(abs(float(exact_math.erf(v)) - math.erf(v)) for v in z) < 1e-14
    assert np.max(np.abs(exact_math.tanh(z) - np.tanh(z))) < 1e-15
    assert np.max(np.abs(exact_math.sigmoid(z) - 1 / (1 + np.exp(-z)))) < 1e-15


def test_sigmoid_pair_is_sigmoid_bit_for_bit():
    x = np.concatenate([np.linspace(-50, 50, 20001), [0.0, -0.0, 745.0, -745.0, 1e-300]])
    pos, neg = exact_math.sigmoid_pair(x)
    assert pos.tobytes() == exact_math.sigmoid(x).tobytes()
    assert neg.tobytes() == exact_math.sigmoid(-x).tobytes()


def test_tables_are_the_same_bits_on_every_machine():
    digest = hashlib.sha256()
    for activation in (gelu_table(), sigmoid_table(), tanh_table()):
        digest.update(activation.table.numpy().tobytes())
    scales = ExactScaleTable(FRAC_BITS)
    digest.update(scales.values.tobytes())
    digest.update(scales.thresholds.tobytes())
    assert digest.hexdigest() == TABLES_SHA256


def test_table_activations_follow_the_float_functions():
    x = torch.arange(-12 * 2**FRAC_BITS, 12 * 2**FRAC_BITS, 977, dtype=torch.float64)
    v = x / 2**FRAC_BITS
    for table, fn in ((gelu_table(), nn.functional.gelu), (sigmoid_table(), torch.sigmoid),
                      (tanh_table(), torch.tanh)):
        out = table(x).double() / 2**FRAC_BITS
        assert (out - fn(v)).abs().max() < 3e-5  # 2 activation steps


def _interpolated(activation, x: torch.Tensor) -> torch.Tensor:
    """The table's definition, as the first exact path computed it (torch, float64):
    clamp to the table, entry and fraction, (start + step frac + half) >> SUBSTEP,
    then the ends (x itself above, 0 below, where the activation says so)."""
    entries = activation.table.to(torch.float64)
    start = entries * 2**SUBSTEP
    step = torch.cat([entries[1:] - entries[:-1], entries.new_zeros(1)])
    lo, hi = activation.lo, activation.hi
    t = x.clamp(lo, hi) - lo
    index = torch.floor(t / 2**SUBSTEP)
    frac = t - index * 2**SUBSTEP
    index = index.to(torch.int64)
    out = torch.floor((start[index] + step[index] * frac) / 2**SUBSTEP + 0.5)
    if activation.identity_above:
        out = torch.where(x > hi, x, out)
    if activation.zero_below:
        out = torch.where(x < lo, torch.zeros_like(out), out)
    return out


@pytest.mark.parametrize("make", [gelu_table, sigmoid_table, tanh_table])
def test_table_activations_at_every_activation(make):
    """The gather (GELU's trimmed dense table) and the numpy interpolation give the
    definition at every activation of the table and a step beyond its ends, and at
    the activations' limits."""
    activation = make()
    one = 2**FRAC_BITS
    x = torch.cat([torch.arange(activation.lo - one, activation.hi + one + 1),
                   torch.tensor([-ACT_LIMIT, ACT_LIMIT, -ACT_LIMIT + 1, ACT_LIMIT - 1])])
    x = x.to(torch.float64)
    out = activation(x)
    assert out.dtype == torch.float64
    assert torch.equal(out, _interpolated(activation, x))
    assert not torch.signbit(out[out == 0]).any()  # no -0.0 (the same bits)


def _reference_shift(weight: torch.Tensor, bias: torch.Tensor, sum_dims: tuple[int, ...]
                     ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """The first exact path's search: every shift from the estimate's down, tested in
    int64 (torch, float64 weights)."""
    weight, bias = weight.double(), bias.double()
    l1_float = float(weight.abs().sum(dim=sum_dims).max())
    start = min(40, int(np.floor(np.log2(2.0**53 / ACT_LIMIT / l1_float))) + 1)
    for shift in range(max(start, 0), -1, -1):
        w_int = torch.round(weight * 2.0**shift)
        b_int = torch.round(bias * 2.0**(FRAC_BITS + shift))
        if w_int.abs().max() >= 2**53 or b_int.abs().max() >= 2**53:
            continue
        l1 = w_int.to(torch.int64).abs().sum(dim=sum_dims)
        if float(l1.max()) * ACT_LIMIT < 2.0**62:
            if int((l1 * ACT_LIMIT + b_int.to(torch.int64).abs()).max()) < 2**53:
                return shift, w_int, b_int
    raise ValueError("no shift")


def _half_outside_the_bias() -> nn.Conv2d:
    """A layer at the bound: w = 1 passes at shift 23 (2^23 ACT_LIMIT = 2^53 - 2^23)
    with a bias of 3 2^21 at the sums' scale, not with 2^22 more (the 1/2)."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(3 * 2.0**21 / 2.0**(FRAC_BITS + 23))
    return conv


def _tiny_weights() -> nn.Conv2d:
    """Weights that round to 0 (of either sign, -0.0 included) beside ordinary ones."""
    conv = nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight[0, 0, 0] = torch.tensor([-0.0, 0.0, -1e-13])
        conv.weight[1, 1, 1] = torch.tensor([1e-13, -3e-12, 2.0**-40])
    return conv


def test_integer_weights_are_those_of_the_exact_search():
    """Deciding shifts from bounds gives the shift and the integers that testing
    every shift in int64 gave, for every layer of a configuration and at the bound."""
    charm, hyper = _entropy_networks("small")
    layers = [m for net in (charm, hyper.h_s_means, hyper.rat_means) for m in net.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    layers += [_half_outside_the_bias(), _tiny_weights()]
    for layer in layers:
        transposed = isinstance(layer, nn.ConvTranspose2d)
        shift, w_int, b_int = _reference_shift(layer.weight.detach(), layer.bias.detach(),
                                               (0, 2, 3) if transposed else (1, 2, 3))
        conv = FixedConv(layer)
        w, b = conv.integer_parameters()
        assert conv.shift == shift
        # the same bits, the signs of zeros included
        assert w.numpy().tobytes() == w_int.numpy().tobytes()
        assert b.numpy().tobytes() == b_int.numpy().tobytes()


def test_rounding_when_the_half_does_not_fit_the_bias():
    conv = FixedConv(_half_outside_the_bias())
    assert conv.shift == 23 and not conv.half_in_bias
    x = torch.tensor([-ACT_LIMIT, -ACT_LIMIT + 1, -5, -1, 0, 1, 7, ACT_LIMIT - 1, ACT_LIMIT],
                     dtype=torch.float64).view(1, 1, 1, -1)
    sums = [int(v) * 2**23 + 3 * 2**21 for v in x.flatten()]
    expected = [max(-ACT_LIMIT, min(ACT_LIMIT, (s + 2**22) >> 23)) for s in sums]
    assert conv(x).flatten().tolist() == expected


def _fixed_convs(module: nn.Module) -> list[FixedConv]:
    return [m for m in module.modules() if isinstance(m, FixedConv)]


def _entropy_networks(name: str) -> list[nn.Module]:
    """The entropy-parameter networks of configuration `name` (seeded random
    weights), at the layer widths that configuration uses."""
    c = get_config(name)
    torch.manual_seed(0)
    charm = ChannelARCodec(c.M, c.num_slices, c.max_support_slices, c.charm_hidden)
    hyper = HyperpriorCodec(c.M, c.Z, c.hyper_hidden, c.M, c.lambdas, c.hyper_upsample,
                            c.median_offsets, c.gain_units)
    return [charm, hyper]


@pytest.mark.parametrize("name", ["tiny", "small", "segpic"])
def test_every_convolution_sums_exactly(name):
    """The bound of fixed_point's docstring, in Python integers, for every layer
    (ChARM's as FixedConv makes them: ExactCharm splits its first layers' integers
    by input, `test_split_charm_gives_the_whole_convolutions`)."""
    from segpic_codec.segpic.networks.exact_entropy import ExactHyperSynthesis

    charm, hyper = _entropy_networks(name)
    convs = [FixedConv(m) for m in charm.modules() if isinstance(m, nn.Conv2d)]
    convs += _fixed_convs(ExactHyperSynthesis(hyper))
    assert len(convs) > 10
    for conv in convs:
        weight, bias = conv.integer_parameters()
        w = weight.numpy().astype(np.int64)
        assert np.array_equal(w, weight.numpy())  # integers
        # the bias the convolution sums: with the 1/2 of rounding, if it holds it
        summed = bias.numpy() + (2.0**(conv.shift - 1) if conv.half_in_bias else 0.0)
        dims = (0, 2, 3) if conv.transposed else (1, 2, 3)
        l1 = np.abs(w).sum(axis=dims)
        worst = max(int(a) * ACT_LIMIT + abs(int(b)) for a, b in zip(l1, summed, strict=True))
        assert worst < 2**53
        assert conv.shift >= 16  # weights keep at least 16 bits below their unit


def _whole_charm(charm: ChannelARCodec, means: torch.Tensor, scales: torch.Tensor,
                 symbols: list[torch.Tensor]) -> list[torch.Tensor]:
    """(mu, scale, y^) of every slice with each transform run whole (fixed_layer):
    the ChARM steps as the first exact path computed them."""
    kinds = [[fixed_layer(t) for t in transforms] for transforms in
             (charm.mean_transforms, charm.scale_transforms, charm.lrp_transforms)]
    tanh = tanh_table()
    decoded: list[torch.Tensor] = []
    out = []
    for i, sym in enumerate(symbols):
        support = decoded[: charm.max_support]
        mu = kinds[0][i](torch.cat([means, *support], dim=1))
        scale = kinds[1][i](torch.cat([scales, *support], dim=1))
        y_hat = (sym * 2.0**FRAC_BITS + mu).clamp(-ACT_LIMIT, ACT_LIMIT)
        lrp = kinds[2][i](torch.cat([means, *support, y_hat], dim=1))
        y = (y_hat + torch.floor(tanh(lrp) * 0.5 + 0.5)).clamp(-ACT_LIMIT, ACT_LIMIT)
        decoded.append(y)
        out += [mu, scale, y]
    return out


@pytest.mark.parametrize("pending", [1, 1 << 17, None])  # a slice per run, a few, all
def test_split_charm_gives_the_whole_convolutions(monkeypatch, pending):
    """ExactCharm's first layers summed in parts (by input, runs of slices) give
    the whole convolutions' integers, and so the same mu, scale and y^."""
    from segpic_codec.segpic.networks import exact_charm

    charm, _ = _entropy_networks("small")
    if pending is not None:
        monkeypatch.setattr(exact_charm, "PENDING_BYTES", pending)
    g = torch.Generator().manual_seed(3)
    shape = (1, charm.mean_transforms[0][0].in_channels, 6, 7)
    means, scales = (torch.randint(-2**19, 2**19, shape, generator=g).double()
                     for _ in range(2))
    symbols = [torch.randint(-20, 21, (1, charm.slice_channels, 6, 7), generator=g).double()
               for _ in range(charm.num_slices)]
    split = exact_charm.ExactCharm(charm)
    ctx = split.start(means, scales)
    decoded: list[torch.Tensor] = []
    out = []
    for i, sym in enumerate(symbols):
        mu, scale = split.slice_params(i, ctx, decoded)
        decoded.append(split.finish_slice(i, ctx, decoded, sym, mu))
        out += [mu, scale, decoded[-1]]
    assert not ctx.sums  # every part was used
    whole = _whole_charm(charm, means, scales, symbols)
    assert all(torch.equal(a, b) for a, b in zip(out, whole, strict=True))


def test_a_convolution_is_exact_at_its_bound():
    """Inputs at +-ACT_LIMIT with the signs of the worst output's weights: the
    largest sum the bound allows, compared with int64 arithmetic."""
    torch.manual_seed(1)
    conv = FixedConv(nn.Conv2d(96, 8, 3, padding=1))
    w, bias = conv.integer_parameters()
    worst = int(w.abs().sum(dim=(1, 2, 3)).argmax())
    x = (torch.sign(w[worst]) * ACT_LIMIT)[None]  # (1, 96, 3, 3)
    out = conv(x)[0, worst, 1, 1]
    exact = int((w[worst].to(torch.int64) * x[0].to(torch.int64)).sum()) + int(bias[worst])
    assert abs(exact) > 2**50  # near the bound indeed
    expected = min(ACT_LIMIT, (exact + (1 << (conv.shift - 1))) >> conv.shift)
    assert int(out) == expected


def test_permuted_summation_gives_the_same_activations():
    torch.manual_seed(2)
    float_conv = nn.Conv2d(64, 16, 3, padding=1)
    x = torch.randint(-(2**22), 2**22, (1, 64, 9, 11)).to(torch.float64)
    perm = torch.randperm(64)
    permuted = nn.Conv2d(64, 16, 3, padding=1)
    with torch.no_grad():
        permuted.weight.copy_(float_conv.weight[:, perm])
        permuted.bias.copy_(float_conv.bias)
    assert torch.equal(FixedConv(float_conv)(x), FixedConv(permuted)(x[:, perm]))


def _entropy_record(codec, pixels: np.ndarray, monkeypatch) -> tuple[list, list, bytes]:
    """Encode and decode `pixels`; the means, scales and per-slice (mu, scale) of
    the encoder and of the decoder, and the file."""
    records: dict[str, list] = {"enc": [], "dec": []}
    side = ["enc"]
    hyper, params = ExactEntropyPath.hyper, ExactEntropyPath.slice_params

    def record_hyper(self, *args):
        out = hyper(self, *args)  # the means and scales, and the ChARM's state
        records[side[0]].extend((out.means.clone(), out.scales.clone()))
        return out

    def record_params(self, *args):
        out = params(self, *args)
        records[side[0]].extend(t.clone() for t in out)
        return out

    monkeypatch.setattr(ExactEntropyPath, "hyper", record_hyper)
    monkeypatch.setattr(ExactEntropyPath, "slice_params", record_params)
    data = codec.encode(pixels, quality=2.5, reconstruct=False).data
    side[0] = "dec"
    codec.decode(data)
    monkeypatch.undo()
    return records["enc"], records["dec"], data


def test_bands_and_threads_leave_the_entropy_parameters_unchanged(
        tiny_codec, monkeypatch, torch_threads):
    pixels = random_image(192, 256, seed=5)
    torch_threads(1)
    enc, dec, data = _entropy_record(tiny_codec, pixels, monkeypatch)
    assert len(enc) == len(dec) > 2
    assert all(torch.equal(a, b) for a, b in zip(enc, dec, strict=True))
    torch_threads(2)
    with monkeypatch.context() as m:  # the thinnest bands
        m.setattr(conv_bands, "BAND_ABOVE_BYTES", 0)
        m.setattr(conv_bands, "IM2COL_BYTES", 1)
        enc2, dec2, data2 = _entropy_record(tiny_codec, pixels, monkeypatch)
    assert data2 == data
    assert all(torch.equal(a, b) for a, b in zip(enc + dec, enc2 + dec2, strict=True))


_SUBPROCESS = """
import hashlib, json, sys
import numpy as np
from PIL import Image
from segpic_codec.segpic.codec import Codec
from segpic_codec.segpic.networks.entropy_paths import ExactEntropyPath
digests = []
for name in ("hyper", "slice_params"):
    method = getattr(ExactEntropyPath, name)
    def wrapped(self, *args, _method=method, _name=name):
        out = _method(self, *args)
        tensors = (out.means, out.scales) if _name == "hyper" else out
        digests.append([hashlib.sha256(t.numpy().tobytes()).hexdigest() for t in tensors])
        return out
    setattr(ExactEntropyPath, name, wrapped)
codec = Codec.load(device="cpu")
if sys.argv[1] == "encode":
    pixels = np.asarray(Image.open(sys.argv[2]).convert("RGB"))[:128, :192]
    open(sys.argv[3], "wb").write(codec.encode(pixels, quality=3.0, reconstruct=False).data)
else:
    codec.decode(open(sys.argv[3], "rb").read())
print(json.dumps(digests))
"""


@pytest.mark.skipif(not SHIPPED.exists(), reason="needs the shipped weights")
def test_encode_and_decode_agree_across_mkl_modes(tmp_path):
    """MKL_CBWR=COMPATIBLE makes MKL's float64 convolutions sum otherwise (another
    machine, in effect): a file encoded in one mode decodes in the other with the
    same entropy parameters, bit for bit."""
    spic = tmp_path / "crop.spic"
    example = REPO / "examples" / "parrots.png"

    def run(mode: str, env_extra: dict) -> list:
        env = {**os.environ, **env_extra}
        out = subprocess.run([sys.executable, "-c", _SUBPROCESS, mode, str(example), str(spic)],
                             capture_output=True, text=True, env=env, timeout=300, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    encoded = run("encode", {"MKL_CBWR": "COMPATIBLE"})
    decoded = run("decode", {"MKL_CBWR": ""})
    assert len(encoded) == 11  # the hyper-synthesis and ten slices
    assert encoded == decoded

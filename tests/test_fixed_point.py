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
from segpic_codec.entropy.entropy_models import ExactScaleTable
from segpic_codec.segpic.config import get_config
from segpic_codec.segpic.networks import conv_bands
from segpic_codec.segpic.networks.charm import ChannelARCodec
from segpic_codec.segpic.networks.entropy_paths import ExactEntropyPath
from segpic_codec.segpic.networks.fixed_point import (
    ACT_LIMIT,
    FRAC_BITS,
    FixedConv,
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
    """The bound of fixed_point's docstring, in Python integers, for every layer."""
    from segpic_codec.segpic.networks.exact_entropy import ExactCharm, ExactHyperSynthesis

    charm, hyper = _entropy_networks(name)
    convs = _fixed_convs(ExactCharm(charm)) + _fixed_convs(ExactHyperSynthesis(hyper))
    assert len(convs) > 10
    for conv in convs:
        weight = conv.weight if conv.transposed else conv.layer.weight
        bias = conv.bias if conv.transposed else conv.layer.bias
        w = weight.detach().numpy().astype(np.int64)
        dims = (0, 2, 3) if conv.transposed else (1, 2, 3)
        l1 = np.abs(w).sum(axis=dims)
        worst = max(int(a) * ACT_LIMIT + abs(int(b))
                    for a, b in zip(l1, bias.detach().numpy(), strict=True))
        assert worst < 2**53
        assert conv.shift >= 16  # weights keep at least 16 bits below their unit


def test_a_convolution_is_exact_at_its_bound():
    """Inputs at +-ACT_LIMIT with the signs of the worst output's weights: the
    largest sum the bound allows, compared with int64 arithmetic."""
    torch.manual_seed(1)
    conv = FixedConv(nn.Conv2d(96, 8, 3, padding=1))
    w = conv.layer.weight.detach()
    worst = int(w.abs().sum(dim=(1, 2, 3)).argmax())
    x = (torch.sign(w[worst]) * ACT_LIMIT)[None]  # (1, 96, 3, 3)
    out = conv(x)[0, worst, 1, 1]
    exact = int((w[worst].to(torch.int64) * x[0].to(torch.int64)).sum()) \
        + int(conv.layer.bias[worst])
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
        out = hyper(self, *args)
        records[side[0]].extend(t.clone() for t in out)
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
    def wrapped(self, *args, _method=method):
        out = _method(self, *args)
        digests.append([hashlib.sha256(t.numpy().tobytes()).hexdigest() for t in out])
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

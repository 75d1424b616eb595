"""The entropy convolutions in bands of rows (segpic/networks/conv_bands.py): equal
to the definition up to float64 rounding on any input, and bit for bit to the whole
convolution on the integer-valued inputs and weights of the exact entropy path
(segpic/networks/fixed_point.py), whose sums float64 holds exactly in any order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segpic_codec.segpic.networks import conv_bands
from segpic_codec.segpic.networks.conv_bands import RowBandedConv2d, band_convolutions


def _pair(cin: int, cout: int, k: int, seed: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    torch.manual_seed(seed)
    plain = nn.Conv2d(cin, cout, k, padding=k // 2).double()
    banded = nn.Conv2d(cin, cout, k, padding=k // 2).double()
    banded.load_state_dict(plain.state_dict())
    band_convolutions(banded)
    return plain, banded


# (cin, cout, k, h, w) of maps cut into several bands
BANDED_SHAPES = [
    (256, 64, 3, 37, 29),   # ChARM's widest input, an odd map
    (64, 48, 3, 20, 31),    # a hidden ChARM layer
    (160, 160, 3, 9, 50),   # the hyperprior RAT's 3x3
    (12, 5, 5, 23, 17),     # a 5x5 kernel
    (8, 8, 3, 200, 1),      # one column (bands of MIN_BAND_POSITIONS rows)
    (8, 8, 3, 130, 1),      # ... and a thin last band, joined to the one before
]
# one row is never cut (fewer positions than a band needs): the banded layer runs
# whole, so comparing it with nn.Conv2d would compare a convolution with itself
ONE_ROW = (8, 8, 3, 1, 40)


def _reference(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The same-padded convolution as its definition, in numpy: a sum over input
    channels and kernel taps of zero-padded shifted inputs (independent of torch's
    convolution and of the banding)."""
    weight = conv.weight.detach().numpy()
    bias = conv.bias.detach().numpy()
    p = conv.padding[0]
    padded = np.pad(x[0].numpy(), ((0, 0), (p, p), (p, p)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, weight.shape[2:], axis=(1, 2))
    out = np.einsum("oiyx,ihwyx->ohw", weight, windows) + bias[:, None, None]
    return torch.from_numpy(out)[None]


@pytest.mark.parametrize("cin,cout,k,h,w", [*BANDED_SHAPES, ONE_ROW])
def test_banded_equals_the_definition(monkeypatch, cin, cout, k, h, w):
    """Up to float64 rounding (the sums run in another order): a band that read the
    wrong rows or padding would be off by whole products."""
    monkeypatch.setattr(conv_bands, "BAND_ABOVE_BYTES", 0)
    monkeypatch.setattr(conv_bands, "IM2COL_BYTES", 1)  # the smallest bands
    _plain, banded = _pair(cin, cout, k, seed=cin + h)
    x = torch.randn(1, cin, h, w, dtype=torch.float64)
    with torch.no_grad():
        out = banded(x)
    torch.testing.assert_close(out, _reference(banded, x), rtol=1e-12, atol=1e-12)


def _integer_valued(conv: nn.Conv2d, bits: int) -> nn.Conv2d:
    """Weights and bias made integers, small enough that every sum stays below 2^53
    for inputs below 2^30 (the bound of fixed_point.FixedConv)."""
    with torch.no_grad():
        conv.weight.copy_(torch.round(conv.weight * 2.0**bits))
        conv.bias.copy_(torch.round(conv.bias * 2.0**(bits + 16)))
    return conv


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cin,cout,k,h,w", BANDED_SHAPES)
def test_banded_equals_whole_bit_for_bit_on_integers(monkeypatch, torch_threads, threads,
                                                     cin, cout, k, h, w):
    # small band sizes, so that these small maps are cut into several bands
    # (1-row bands included) as a 4K image's are
    monkeypatch.setattr(conv_bands, "BAND_ABOVE_BYTES", 0)
    plain, banded = _pair(cin, cout, k, seed=cin + h)
    for conv in (plain, banded):
        _integer_valued(conv, 14)
    x = torch.randint(-(1 << 30) + 1, 1 << 30, (1, cin, h, w)).to(torch.float64)
    bound = plain.weight.abs().sum(dim=(1, 2, 3)).max() * (1 << 30) + plain.bias.abs().max()
    assert bound < 2.0**53  # the premise of exactness
    torch_threads(threads)
    with torch.no_grad():
        whole = _reference_exact(plain, x)
        for band_bytes in (1, 3 * cin * k * k * w * 8, 1 << 20):
            monkeypatch.setattr(conv_bands, "IM2COL_BYTES", band_bytes)
            if band_bytes < 1 << 20 and h * w >= 2 * conv_bands.MIN_BAND_POSITIONS:
                assert conv_bands.rows_per_band(banded, x) < h  # really in bands
            assert torch.equal(banded(x), whole)
            assert torch.equal(plain(x), whole)


def _reference_exact(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The convolution of integers in int64 arithmetic (exact, any order)."""
    weight = conv.weight.detach().numpy().astype(np.int64)
    bias = conv.bias.detach().numpy().astype(np.int64)
    p = conv.padding[0]
    padded = np.pad(x[0].numpy().astype(np.int64), ((0, 0), (p, p), (p, p)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, weight.shape[2:], axis=(1, 2))
    out = np.einsum("oiyx,ihwyx->ohw", weight, windows) + bias[:, None, None]
    return torch.from_numpy(out.astype(np.float64))[None]


def test_small_maps_run_whole_and_only_same_convolutions_are_banded():
    plain, banded = _pair(256, 64, 3, seed=0)
    kodak = torch.zeros(1, 256, 32, 48, dtype=torch.float64)  # 28 MB of im2col
    assert conv_bands.rows_per_band(banded, kodak) == 32
    big = torch.zeros(1, 256, 135, 240, dtype=torch.float64)  # a 4K image's latents
    assert 1 <= conv_bands.rows_per_band(banded, big) < 135
    net = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3),
                        nn.Conv2d(4, 8, 3, padding=1, groups=4))
    band_convolutions(net)
    assert [type(m) is RowBandedConv2d for m in net] == [True, False, False, False, True]
    assert set(net.state_dict()) == {f"{i}.{p}" for i in range(5) for p in ("weight", "bias")}

"""Round trips through the Python API with the tiny seeded model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, random_image

from segpic_codec.errors import CodecError
from segpic_codec.segpic import layout
from segpic_codec.segpic.codec import Codec


@pytest.mark.parametrize("size", [(1, 1), (1, 70), (65, 3), (64, 64), (63, 130), (100, 37)])
def test_roundtrip_any_size(tiny_codec, size):
    image = random_image(*size, seed=size[0] * 1000 + size[1])
    result = tiny_codec.encode(image, quality=3)
    decoded = tiny_codec.decode(result.data)
    assert decoded.shape == image.shape
    assert np.array_equal(decoded, result.reconstruction)
    header, _, _ = layout.read_header(result.data)
    assert (header.width, header.height) == (size[1], size[0])


@pytest.mark.parametrize("quality", [1, 2.5, 4.075, 6])
@pytest.mark.parametrize("grid", [1, 4, 8])
def test_roundtrip_qualities_and_grids(tiny_codec, quality, grid):
    image = random_image(96, 160, seed=7)
    result = tiny_codec.encode(image, quality=quality, grid=grid)
    assert np.array_equal(tiny_codec.decode(result.data), result.reconstruction)
    header, _, _ = layout.read_header(result.data)
    assert header.grid == grid
    assert header.quality == layout.quantize_quality(quality)


def test_rate_grows_with_quality(tiny_codec):
    image = random_image(128, 128, seed=3)
    sizes = [len(tiny_codec.encode(image, quality=q).data) for q in (1, 3.5, 6)]
    assert sizes[0] < sizes[2]


def test_bpp_target_never_exceeded(tiny_codec):
    image = random_image(128, 192, seed=5)
    low = tiny_codec.encode(image, quality=1).bpp
    high = tiny_codec.encode(image, quality=6).bpp
    target = (low + high) / 2
    result = tiny_codec.encode(image, bpp=target)
    assert result.bpp <= target
    assert result.bpp >= low
    with pytest.raises(CodecError, match="cannot reach"):
        tiny_codec.encode(image, bpp=low / 4)


def test_bad_requests(tiny_codec):
    image = random_image(16, 16)
    with pytest.raises(CodecError):
        tiny_codec.encode(image, quality=0.5)
    with pytest.raises(CodecError):
        tiny_codec.encode(image, quality=3, bpp=0.5)
    with pytest.raises(CodecError):
        tiny_codec.encode(image.astype(np.float32))


def test_foreign_weights_refused(tiny_codec):
    result = tiny_codec.encode(random_image(32, 32), quality=2)
    data = bytearray(result.data)
    # same model, other weights id (and a valid checksum); in SegPIC's header
    # payload, right after the model id
    start = data.index(bytes.fromhex(tiny_codec.weights_id))
    data[start : start + 4] = bytes.fromhex("deadbeef")
    import struct
    import zlib

    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(CodecError, match="weights"):
        tiny_codec.decode(bytes(data))


def test_decode_in_fresh_process_is_bit_exact(tiny_weights, tmp_path):
    """With the exact (float64) synthesis, on both sides."""
    image = random_image(80, 144, seed=11)
    result = Codec.load(tiny_weights, device="cpu", exact=True).encode(image, quality=4.5)
    spic = tmp_path / "a.spic"
    spic.write_bytes(result.data)
    out = tmp_path / "decoded.npy"
    code = (
        "import numpy as np, sys\n"
        "from segpic_codec.segpic.codec import Codec\n"
        f"c = Codec.load({str(tiny_weights)!r}, device='cpu')\n"
        f"np.save({str(out)!r}, c.decode(open({str(spic)!r}, 'rb').read()))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", SEGPIC_EXACT="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=300)
    assert np.array_equal(np.load(out), result.reconstruction)


def test_banded_transforms_equal_whole(tiny_codec, monkeypatch):
    """The 4K-memory bands (`bands`) compute the unbanded result: in
    float64 (the decoder's precision) up to the last bit of rounding, which the
    matrix kernels chosen for different band sizes may order differently. Encoder
    and decoder band the same image the same way, so they still agree exactly."""
    import copy

    import torch

    from segpic_codec.segpic.networks import bands
    from segpic_codec.segpic.networks.regions import grid_partition

    net = copy.deepcopy(tiny_codec.model).double()
    torch.manual_seed(3)
    x = torch.rand(1, 3, 320, 128, dtype=torch.float64)
    mid = torch.randn(1, net.config.N, 80, 32, dtype=torch.float64)
    part = grid_partition(1, 80, 32, 4)
    protos = torch.randn(part.num_regions, net.config.N, dtype=torch.float64)
    with torch.no_grad():
        def same(a, b):
            return torch.allclose(a, b, rtol=0, atol=1e-12)

        assert same(bands.banded(net.g_s1, mid, 16, 16, step_out=4), net.g_s1(mid))
        assert same(bands.banded(net.g_a1, x, 16, 16, step_in=4), net.g_a1(x))
        # the float32 path's bands: 16 rows for the attention, 8 for the rest (as
        # if a 4K image); each margin is what its stages reach, and one row less
        # is not enough
        monkeypatch.setattr(bands, "TAIL_POSITIONS", 8 * 32)
        monkeypatch.setattr(bands, "TAIL_MIN_ROWS", 8)
        whole = (net.g_s1(mid), net.g_a1(x), net.rat_decoder(mid, protos, part))

        def in_bands():
            return (bands.up_blocks_in_bands(net.g_s1,
                                             bands.attention_in_bands(net.g_s1, mid, 16)),
                    bands.analysis_g_a1(net.g_a1, x, 16),
                    bands.rat_in_bands(net.rat_decoder, mid, protos, part, 16, exact=False))

        assert [same(a, b) for a, b in zip(in_bands(), whole, strict=True)] == [True] * 3
        monkeypatch.setattr(bands, "TAIL_MARGIN", 1)
        assert [same(a, b) for a, b in zip(in_bands(), whole, strict=True)] == [False] * 3
        monkeypatch.setattr(bands, "TAIL_MARGIN", 2)
        # window attention bands keep whole windows: no margin is the next choice
        monkeypatch.setattr(bands, "WAM_MARGIN", 0)
        assert [same(a, b) for a, b in zip(in_bands(), whole, strict=True)][:2] == [False] * 2
        assert same(net.rat_decoder.forward_banded(mid, protos, part, 16),
                    net.rat_decoder(mid, protos, part))


def _authors_structure_tiny():
    """`tiny`'s widths with the authors' structural options (as the `segpic` config)."""
    from dataclasses import replace

    from segpic_codec.segpic.config import get_config

    return replace(get_config("tiny"), hyper_upsample="subpel", up_gdn="forward",
                   attn_shift=True, proto_enc_synthesis=(4, 12, 16), median_offsets=True,
                   gain_units=False, lambdas=(0.002, 0.02))


def test_banded_shifted_windows_equal_whole():
    """Shifted windows (the authors' attention) band exactly too: bands start on
    window boundaries and the rolled-in pieces at a band's edges stay in its margin."""
    import torch

    from segpic_codec.segpic.networks import bands
    from segpic_codec.segpic.networks.model import SegPIC

    torch.manual_seed(5)
    net = SegPIC(_authors_structure_tiny()).double().eval()
    with torch.no_grad():
        for p in net.parameters():  # random, not near-identity, attention and SAL
            p.add_(0.05 * torch.randn_like(p))
        x = torch.rand(1, 3, 320, 128, dtype=torch.float64)
        mid = torch.randn(1, net.config.N, 80, 32, dtype=torch.float64)
        for rows, margin in ((16, 16), (bands.BAND_ROWS, bands.BAND_MARGIN)):
            a = bands.banded(net.g_s1, mid, rows, margin, step_out=4)
            assert torch.allclose(a, net.g_s1(mid), rtol=0, atol=1e-12)
            b = bands.banded(net.g_a1, x, rows, margin, step_in=4)
            assert torch.allclose(b, net.g_a1(x), rtol=0, atol=1e-12)
        # the float32 path's bands: the attention with a margin of one window
        a = bands.up_blocks_in_bands(net.g_s1, bands.attention_in_bands(net.g_s1, mid, 16))
        assert torch.allclose(a, net.g_s1(mid), rtol=0, atol=1e-12)
        b = bands.analysis_g_a1(net.g_a1, x, 16)
        assert torch.allclose(b, net.g_a1(x), rtol=0, atol=1e-12)


def test_fixed_rate_levels_roundtrip(tmp_path):
    """A folder of fixed-rate networks (what `segpic import-weights` writes): whole
    qualities only, each level its own network, decode = the encoder's reconstruction."""
    import torch

    from segpic_codec.segpic.codec import Codec
    from segpic_codec.segpic.networks.model import SegPIC
    from segpic_codec.segpic.weights.levels import save_levels

    config = _authors_structure_tiny()
    states = []
    for level in range(2):
        torch.manual_seed(10 + level)
        net = SegPIC(config)
        with torch.no_grad():  # give the latents some range, and the medians a value
            net.g_a2[1].sal.net[2].bias[: config.M].fill_(3.0 * (level + 1))
            for density in (net.hyperprior.density, net.transform_prototypes.density,
                            net.entropy_prototypes.density):
                density.quantiles[:, 0, 1].uniform_(-1.5, 1.5)
        states.append((net.state_dict(), {"seed": 10 + level}))
    save_levels(states, config, tmp_path / "levels")
    codec = Codec.load(tmp_path / "levels", device="cpu")
    assert codec.fixed_rate and codec.default_quality == 2.0
    image = random_image(70, 90, seed=7)
    for quality in (1, 2):
        result = codec.encode(image, quality=quality)
        assert np.array_equal(codec.decode(result.data), result.reconstruction)
    assert sorted(codec.model._networks) == [0, 1]
    with pytest.raises(CodecError, match="whole number"):
        codec.encode(image, quality=1.5)
    assert codec.encode(image, bpp=1e6).quality == 2.0


def test_analysis_convolutions_run_channels_last(tiny_codec):
    """The pixels enter the analysis in a channels-last layout oneDNN accepts (batch
    stride H*W*3), so every analysis stage stays channels-last: with a permuted
    (H, W, 3) view (batch stride 3) the first convolution fell back to NCHW and took
    the whole analysis with it, a quarter of a Kodak encode's time."""
    seen = []
    conv = tiny_codec.model.g_a1[0].conv
    handle = conv.register_forward_hook(
        lambda mod, inputs, out: seen.append(out.is_contiguous(memory_format=torch.channels_last)
                                             and not out.is_contiguous()))
    try:
        tiny_codec.encode(random_image(64, 96, seed=11), quality=3, reconstruct=False)
    finally:
        handle.remove()
    assert seen and all(seen)


def test_release_free_memory_is_safe_to_call():
    from segpic_codec.heap import release_free_memory

    assert release_free_memory() is sys.platform.startswith("linux")


def test_between_stages_releases_only_when_enabled(monkeypatch):
    from segpic_codec import heap

    calls = []
    monkeypatch.setattr(heap, "release_free_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(heap, "_between_stages", False)
    heap.between_stages()
    assert calls == []
    heap.enable_between_stages()
    heap.between_stages()
    assert calls == [1]

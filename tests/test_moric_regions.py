"""MoRIC with regions: per-region LSNs, the contour stream in the file, layered
decoding, bad partitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segpic_codec.errors import SegpicError
from segpic_codec.moric import codec, layout
from segpic_codec.moric.errors import MoricArgumentError, MoricFormatError
from segpic_codec.moric.networks.model import Architecture, MoricModel
from segpic_codec.moric.networks.regions import RegionSplit


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 / width, y * 200 / height, (x + y) * 100 / (width + height)],
                    axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _ring_labels(height: int, width: int) -> np.ndarray:
    """Three regions: background, a disc with a hole, and the hole."""
    y, x = np.mgrid[0:height, 0:width]
    r = np.hypot(y - height / 2, x - width / 2)
    labels = np.zeros((height, width), np.int32)
    labels[r < min(height, width) * 0.4] = 1
    labels[r < min(height, width) * 0.15] = 2
    return labels


@pytest.fixture(scope="module")
def ring():
    pixels = _image(24, 31, seed=2)
    labels = _ring_labels(24, 31)
    enc = codec.encode(pixels, quality=4.0, steps=10, regions=labels,
                       contour_mode="lossless")
    return pixels, labels, enc


def test_given_labels_round_trip(ring):
    pixels, labels, enc = ring
    assert enc.regions == 3
    np.testing.assert_array_equal(enc.labels, labels)  # lossless contours
    header = layout.unpack(enc.payload)
    assert header.regions == 3 and header.version == 2
    np.testing.assert_array_equal(codec.decode(enc.payload, enc.streams, 31, 24),
                                  enc.reconstruction)


def test_layered_decode_draws_only_the_asked_regions(ring):
    _, labels, enc = ring
    for only in ({1}, {0, 2}, {2}):
        layer = codec.decode(enc.payload, enc.streams, 31, 24, regions=only)
        assert layer.shape == (24, 31, 4) and layer.dtype == np.uint8
        inside = np.isin(labels, sorted(only))
        np.testing.assert_array_equal(layer[..., 3], inside * 255)
        # the drawn pixels are exactly the full decode's
        np.testing.assert_array_equal(layer[inside][:, :3], enc.reconstruction[inside])
        assert not layer[~inside].any()


def test_layered_decode_bad_region(ring):
    _, _, enc = ring
    for bad in ({3}, {-1}, set()):
        with pytest.raises(MoricArgumentError, match="region"):
            codec.decode(enc.payload, enc.streams, 31, 24, regions=bad)


def test_each_region_has_its_own_network():
    """Identical latents, two regions: changing LSN 1 changes only region 1's pixels."""
    labels = np.zeros((16, 20), np.int32)
    labels[:, 12:] = 1
    model = MoricModel(16, 20, Architecture(8, "gelu", 2), labels=labels)
    q = torch.zeros(model.canvas.shape)
    with torch.no_grad():
        before = model.decode_latents(q).reshape(3, 16, 20).clone()
        model.synthesis.lsns[1].b_res[2].add_(0.25)
        after = model.decode_latents(q).reshape(3, 16, 20)
    changed = (after - before).abs().amax(dim=0) > 0
    assert changed[:, 12:].all() and not changed[:, :12].any()


def test_region_split_covers_each_pixel_once():
    labels = np.array([[0, 2, 2], [1, 0, 2]])
    split = RegionSplit.from_labels(labels, 3)
    assert sorted(torch.cat(split.indices).tolist()) == list(range(6))
    assert [i.tolist() for i in split.indices] == [[0, 4], [3], [1, 2, 5]]
    partial = RegionSplit.from_labels(labels, 3, only={2})
    assert partial.indices[0] is None and partial.indices[2].tolist() == [1, 2, 5]


def test_auto_regions_and_none():
    pixels = _image(30, 40, seed=4)
    auto = codec.encode(pixels, quality=3.0, steps=4, regions="auto", region_count=2)
    assert auto.regions == 2 and len(auto.streams) == 9
    np.testing.assert_array_equal(codec.decode(auto.payload, auto.streams, 40, 30),
                                  auto.reconstruction)
    none = codec.encode(pixels, quality=3.0, steps=4, regions="none")
    assert none.regions == 1 and len(none.streams) == 8
    assert layout.unpack(none.payload).version == 1


@pytest.mark.parametrize("regions, count, match", [
    (np.zeros((5, 5), np.int32), 3, "the image is 8x6"),
    (np.arange(48).reshape(6, 8), 3, "at most 16"),
    (np.where(np.arange(48).reshape(6, 8) < 20, 0, 2), 3, "unused"),
    (np.full((6, 8), 0.5), 3, "integer"),
    ("blobs", 3, "regions must be"),
    ("auto", 0, "region count"),
    ("auto", 17, "region count"),
])
def test_bad_partitions(regions, count, match):
    with pytest.raises(SegpicError, match=match) as err:
        codec.encode(_image(6, 8), steps=2, regions=regions, region_count=count)
    assert "\n" not in str(err.value)


def test_header_and_contours_must_agree(ring):
    _, _, enc = ring
    header = layout.unpack(enc.payload)
    header.regions = 2  # the contours hold 3
    with pytest.raises(MoricFormatError, match="regions"):
        codec.decode(layout.pack(header), enc.streams, 31, 24)
    with pytest.raises(MoricFormatError):  # a version-2 file without its contour stream
        codec.decode(enc.payload, enc.streams[:1] + enc.streams[2:], 31, 24)
    payload = bytearray(enc.payload)
    payload[0] = 1  # version 1 holds one region
    with pytest.raises(MoricFormatError, match="regions for version 1"):
        codec.decode(bytes(payload), enc.streams, 31, 24)


def test_banded_synthesis_with_regions_equals_whole(monkeypatch):
    """The large-image path (bands of rows) gives the same image, loss and
    gradients as whole-image tensors, with regions and with a layered decode."""
    from segpic_codec.moric.networks import banded
    from segpic_codec.moric.networks import model as model_module

    labels = _ring_labels(26, 19)
    model = MoricModel(26, 19, Architecture(8, "gelu", 3), labels=labels, seed=3)
    with torch.no_grad():
        for p in model.synthesis.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    q = torch.randn(model.canvas.shape, generator=torch.Generator().manual_seed(2)).round()
    target = torch.rand(3, 26 * 19, generator=torch.Generator().manual_seed(3))

    def run():
        q_grad = q.clone().requires_grad_()
        model.zero_grad()
        loss = model.squared_error(q_grad, target)
        loss.backward()
        grads = [p.grad.clone() for p in model.synthesis.parameters()]
        with torch.no_grad():
            return (loss.detach(), q_grad.grad, grads, model.decode_latents(q),
                    model.decode_latents(q, {2}))

    whole = run()
    monkeypatch.setattr(model_module, "BANDED_MIN_PIXELS", 1)
    monkeypatch.setattr(banded, "BAND_PIXELS", 19 * 5)
    assert model.banded(q.new_zeros(7, 1))
    bands = run()
    torch.testing.assert_close(bands[0], whole[0])
    torch.testing.assert_close(bands[1], whole[1])
    for a, b in zip(bands[2], whole[2], strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(bands[3], whole[3])
    torch.testing.assert_close(bands[4], whole[4])
    inside = torch.from_numpy(labels.reshape(-1) == 2)
    torch.testing.assert_close(whole[4][:, inside], whole[3][:, inside])
    assert not whole[4][:, ~inside].any()


def _object_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[4:15, 6:20] = True
    mask[8:11, 18:27] = True
    return mask


@pytest.fixture(scope="module")
def single_object():
    pixels = _image(40, 48, seed=6)
    mask = _object_mask(40, 48)
    return pixels, mask, codec.encode(pixels, quality=4.0, steps=8, roi=mask,
                                      contour_mode="lossless")


def test_single_object_round_trip(single_object):
    pixels, mask, enc = single_object
    header = layout.unpack(enc.payload)
    assert header.object_only and header.regions == 2
    np.testing.assert_array_equal(enc.labels != 0, mask)
    decoded = codec.decode(enc.payload, enc.streams, 48, 40)
    assert decoded.shape == (40, 48, 4)
    np.testing.assert_array_equal(decoded, enc.reconstruction)
    np.testing.assert_array_equal(decoded[..., 3], mask * 255)
    assert not decoded[~mask].any()
    np.testing.assert_array_equal(codec.decode(enc.payload, enc.streams, 48, 40, {1}), decoded)
    with pytest.raises(MoricArgumentError, match="region"):
        codec.decode(enc.payload, enc.streams, 48, 40, {0})


def test_single_object_skips_latents_far_from_it(single_object):
    """Latents that no object pixel needs are not coded: the object-only file
    codes fewer latents, and changing a skipped latent changes no object pixel."""
    from segpic_codec.moric.bitstream.roi import kept_latents

    _, mask, enc = single_object
    model = MoricModel(40, 48, Architecture(8, "gelu", 2), labels=mask.astype(np.int32),
                       object_only=True, seed=1)
    keep = kept_latents(mask, model.canvas)
    index = model.canvas.latent_index
    assert 0 < keep[index].sum() < index.size
    assert not keep[np.setdiff1d(np.arange(keep.size), index)].any()  # margins
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(9)))
        q = torch.zeros(model.canvas.numel)
        base = model.decode_latents(q.reshape(model.canvas.shape))
        skipped = index[~keep[index]]
        q[skipped] = 5.0
        moved = model.decode_latents(q.reshape(model.canvas.shape))
    inside = torch.from_numpy(mask.reshape(-1))
    torch.testing.assert_close(moved[:, inside], base[:, inside], rtol=0, atol=0)


@pytest.mark.parametrize("roi, match", [
    (np.zeros((40, 48)), "empty"),
    (np.ones((40, 48)), "whole image"),
    (np.ones((10, 10)), "the image is 48x40"),
])
def test_bad_object_masks(roi, match):
    with pytest.raises(MoricArgumentError, match=match):
        codec.encode(_image(40, 48), steps=2, roi=roi)


@pytest.mark.parametrize("features, regions", [(24, 1), (16, 3), (8, 16)])
def test_parameter_shapes_follow_the_networks(features, regions):
    """The torch-free decoder and `segpic info` walk the parameter stream by
    `parameters.parameter_shapes`: its names and shapes must be the networks' own."""
    from segpic_codec.moric.bitstream.param_quant import parameter_groups
    from segpic_codec.moric.bitstream.parameters import parameter_shapes

    labels = (np.arange(16 * 16).reshape(16, 16) % regions).astype(np.int32)
    model = MoricModel(16, 16, Architecture(features, "gelu", regions),
                       labels=labels if regions > 1 else None)
    shapes = parameter_shapes(features, regions)
    modules = model.sent_modules()
    for module, kind, params in parameter_groups(modules):
        names = {id(p): n for n, p in modules[module].named_parameters()}
        assert shapes[(module, kind)] == [(names[id(p)], tuple(p.shape)) for p in params], \
            (module, kind)


def test_object_outline_is_exact_by_default():
    """A lossy outline would make object pixels transparent: --roi codes it exactly."""
    y, x = np.mgrid[0:48, 0:64]
    mask = np.hypot(y - 24, x - 30) < 17  # a disc: C* would approximate it
    enc = codec.encode(_image(48, 64, seed=8), steps=2, roi=mask)
    np.testing.assert_array_equal(enc.labels != 0, mask)


def test_codec_neutral_encode_takes_moric_budget_and_regions():
    from segpic_codec import codecs

    result = codecs.encode(_image(12, 16), codec="moric", quality=3.0, steps=2,
                           preset="fast", regions="none")
    assert codecs.describe(result.data)[1]["steps"] == 2
    np.testing.assert_array_equal(codecs.decode(result.data), result.reconstruction)

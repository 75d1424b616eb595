"""The CPU training loss (`cpu_loss`: rate and distortion in pieces over
threads) gives the same loss and gradients as one autograd graph over the
whole model, and the same bits whichever thread computes which piece."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segpic_codec.moric.networks import banded
from segpic_codec.moric.networks.model import Architecture, MoricModel
from segpic_codec.moric.training import cpu_loss
from segpic_codec.moric.training.cpu_loss import CpuLoss

HEIGHT, WIDTH = 26, 19


def _labels() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    labels = np.zeros((HEIGHT, WIDTH), np.int64)
    labels[np.hypot(y - 13, x - 9) < 8] = 1
    labels[np.hypot(y - 13, x - 9) < 3] = 2
    return labels


def _model(regions: int, object_only: bool = False) -> MoricModel:
    labels = _labels() if regions > 1 else None
    if object_only:
        labels = (labels > 0).astype(np.int64)
        regions = 2
    model = MoricModel(HEIGHT, WIDTH, Architecture(8, "gelu", regions), labels=labels, seed=3,
                       object_only=object_only)
    with torch.no_grad():  # away from the zero-initialised residual layers
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return model


def _gradients(model: MoricModel, loss_fn, mode: str) -> tuple[list, list]:
    model.zero_grad(set_to_none=True)
    generator = torch.Generator().manual_seed(5)
    q = model.latents.quantized(mode, 0.3, 0.2, generator)
    if mode == "hard":
        q = q.detach()
    mse, bits = loss_fn(q)
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    return [mse.detach(), bits.detach()], grads


def _reference(model: MoricModel, target: torch.Tensor, rate_weight: float):
    def loss_fn(q):
        mse = model.squared_error(q, target) / (3 * model.drawn_pixels)
        bits = model.rate_bits(q)
        (mse + rate_weight * bits).backward()
        return mse, bits
    return loss_fn


@pytest.mark.parametrize("regions,object_only,mode", [(1, False, "softround"),
                                                      (3, False, "noise"),
                                                      (3, False, "hard"),
                                                      (2, True, "softround")])
@pytest.mark.parametrize("workers", [1, 2])
def test_cpu_loss_equals_one_autograd_graph(monkeypatch, regions, object_only, mode, workers):
    monkeypatch.setattr(banded, "BAND_PIXELS", WIDTH * 5)  # 6 bands with halos
    monkeypatch.setattr(cpu_loss, "MIN_BAND_ROWS", 1)
    model = _model(regions, object_only)
    target = torch.rand(3, HEIGHT * WIDTH, generator=torch.Generator().manual_seed(3))
    if object_only:
        target[:, torch.from_numpy(model.regions.labels.reshape(-1) == 0)] = 0
    rate_weight = 1e-3 / (HEIGHT * WIDTH)
    want_values, want_grads = _gradients(model, _reference(model, target, rate_weight), mode)
    loss = CpuLoss(workers)
    try:
        got_values, got_grads = _gradients(
            model, lambda q: loss(model, q, target, rate_weight, True), mode)
        with torch.no_grad():
            q = model.latents.quantized("hard")
            eval_values = loss(model, q, target, rate_weight, False)
    finally:
        loss.close()
    for got, want in zip(got_values, want_values, strict=True):
        torch.testing.assert_close(got, want)
    names = [n for n, _ in model.named_parameters()]
    for name, got, want in zip(names, got_grads, want_grads, strict=True):
        assert (got is None) == (want is None), name
        if got is not None:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7, msg=name)
    if mode == "hard":  # rounding passes no gradient to the latents
        assert got_grads[names.index("latents.values")] is None
    torch.testing.assert_close(eval_values[1], want_values[1] if mode == "hard"
                               else eval_values[1])


@pytest.fixture
def one_intra_op_thread():
    """As the encoder runs it: every thread with one intra-op thread, so that a
    piece's result does not depend on the thread that computes it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_two_threads_give_the_same_gradients_every_time(monkeypatch, one_intra_op_thread):
    """Pieces are taken by whichever thread is free, but summed in a fixed order."""
    monkeypatch.setattr(banded, "BAND_PIXELS", WIDTH * 3)
    monkeypatch.setattr(cpu_loss, "MIN_BAND_ROWS", 1)
    model = _model(3)
    target = torch.rand(3, HEIGHT * WIDTH, generator=torch.Generator().manual_seed(4))
    one, two = CpuLoss(1), CpuLoss(2)
    try:
        runs = [_gradients(model, lambda q, f=f: f(model, q, target, 1e-5, True), "softround")
                for f in (one, two, two, two)]
    finally:
        one.close()
        two.close()
    for values, grads in runs[1:]:
        for a, b in zip(values + grads, runs[0][0] + runs[0][1], strict=True):
            assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("regions,object_only", [(1, False), (3, False), (2, True)])
def test_search_distortion_equals_the_training_one(monkeypatch, one_intra_op_thread, regions,
                                                   object_only):
    """The parameter search's distortion (`squared_error_value`: bands on two
    threads, the GMN's projections kept while only the LSNs change) is
    the banded `squared_error`'s value bit for bit; a kept projection is not
    reused once the caller empties the cache."""
    monkeypatch.setattr(banded, "BAND_PIXELS", WIDTH * 3)
    from segpic_codec.moric.networks import model as model_module
    monkeypatch.setattr(model_module, "BANDED_MIN_PIXELS", 1)  # squared_error in bands too
    model = _model(regions, object_only)
    target = torch.rand(3, HEIGHT * WIDTH, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        q = model.latents.quantized("hard", 0.0, 0.0, None)
        dense = model.dense_latents(q)
        cache = banded.gmn_cache(HEIGHT, WIDTH)
        assert len(cache) > 2
        for workers, kept in ((1, None), (2, None), (2, cache), (2, cache)):
            value = model.squared_error_value(target, dense, workers, kept)
            assert torch.equal(value, model.squared_error(q, target))
        assert all(c is not None for c in cache)
        model.synthesis.lsns[-1].b_res.add_(0.1)  # only an LSN changes: the cache holds
        assert torch.equal(model.squared_error_value(target, dense, 2, cache),
                           model.squared_error(q, target))
        model.synthesis.gmn.b1.add_(0.1)  # the GMN changes: a stale cache would differ
        fresh = model.squared_error(q, target)
        assert not torch.equal(model.squared_error_value(target, dense, 2, cache), fresh)
        assert torch.equal(model.squared_error_value(
            target, dense, 2, banded.gmn_cache(HEIGHT, WIDTH)), fresh)

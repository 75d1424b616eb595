"""MoRIC's latent start: the analysis network, its canvas layout, its fit and
its use by an encode (the encoder's business: files decode as before)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from segpic_codec.moric.bitstream.canvas import Canvas
from segpic_codec.moric.networks.model import Architecture, MoricModel
from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.latent_init import (
    LatentInit,
    initial_latents,
    to_canvas,
)
from segpic_codec.moric.training.latent_init_fit import LatentFitSettings, fit_latent_init
from segpic_codec.moric.training.prior import network_state
from segpic_codec.moric.training.recipe import PRESETS, quality_to_lambda


def _image(height: int = 64, width: int = 96, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.1, 0.9, width)[None, None, :].repeat(height, 1)
    pixels = np.clip(ramp + 0.05 * rng.standard_normal((3, height, width)), 0, 1)
    return torch.from_numpy(pixels).float()


def test_each_grid_lands_in_its_place_on_the_canvas_and_the_margins_stay_zero():
    canvas = Canvas(64, 96)
    grids = [torch.full(size, float(k + 1)) for k, size in enumerate(canvas.sizes)]
    out = to_canvas(grids, canvas)
    assert out.shape == canvas.shape
    for k, (rows, cols) in enumerate(canvas.grid_slices()):
        assert torch.all(out[rows, cols] == k + 1)
    assert out.sum() == sum((k + 1) * r * c for k, (r, c) in enumerate(canvas.sizes))


def test_the_analysis_gives_every_grid_its_size_and_depends_on_the_quality():
    torch.manual_seed(0)
    analysis = LatentInit()
    for level in analysis.levels:  # a visible output (the start is near zero)
        torch.nn.init.normal_(level[-1].weight, std=1.0)
    image = _image(50, 70)
    canvas = Canvas(50, 70)
    low = analysis(image, quality_to_lambda(1.0), canvas.sizes)
    high = analysis(image, quality_to_lambda(6.0), canvas.sizes)
    assert [tuple(g.shape) for g in low] == canvas.sizes
    assert not torch.allclose(low[0], high[0])


def test_an_encode_starts_its_latents_from_the_analysis():
    torch.manual_seed(1)
    analysis = LatentInit().eval().requires_grad_(False)
    for level in analysis.levels:
        torch.nn.init.normal_(level[-1].weight, std=2.0)
    height, width = 64, 96
    target = _image(height, width).reshape(3, -1)
    lmbda = quality_to_lambda(3.0)
    arch = Architecture(8, "gelu", 1)
    prior = network_state(MoricModel(height, width, arch, seed=5))
    recipe = replace(PRESETS["medium"], features=8)
    optimisation = Optimisation(target, height, width, lmbda, recipe, Budget(1, None, 0.0),
                                prior=prior, latent_init=analysis)
    model, _ = optimisation.new_candidate(0)
    expected = initial_latents(analysis, target, height, width, lmbda, Canvas(height, width))
    assert expected.abs().sum() > 0
    torch.testing.assert_close(model.latents.values * model.latents.gain, expected)
    # every region's colour starts at the image's mean: the analysis draws around it
    for lsn in model.synthesis.lsns:
        torch.testing.assert_close(lsn.b_res[2], target.mean(dim=1))


def test_a_short_fit_lowers_the_loss_it_logs(tmp_path):
    from PIL import Image

    paths = []
    for k in range(3):
        pixels = (_image(80, 80, seed=k).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        path = tmp_path / f"p{k}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    arch = Architecture(8, "gelu", 1)
    prior = {k: v.numpy() for k, v in network_state(MoricModel(64, 64, arch, seed=2)).items()}
    rows: list[dict] = []
    settings = LatentFitSettings(iterations=40, batch=2, crop=64, lr=5e-3, features=8)
    analysis = fit_latent_init(paths, prior, settings, rows.append, log_every=20)
    assert len(rows) == 2 and rows[1]["loss"] < rows[0]["loss"]
    assert not any(p.requires_grad for p in analysis.parameters())


def test_a_saved_analysis_loads_back_bit_for_bit(tmp_path):
    from safetensors.torch import save_file

    from segpic_codec.moric.training.latent_init import load_latent_init

    torch.manual_seed(3)
    analysis = LatentInit()
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in analysis.state_dict().items()}, str(path))
    loaded = load_latent_init(str(path))
    for (name, value), again in zip(analysis.state_dict().items(),
                                    loaded.state_dict().values(), strict=True):
        assert torch.equal(value, again), name


def test_the_latents_and_the_networks_follow_their_own_peak_learning_rates(monkeypatch):
    """network_lr sets the networks' peak apart from the latents' (lr); both
    decay from their peak on one cosine; the latents' epsilon reaches Adam."""
    height, width = 16, 16
    target = _image(height, width).reshape(3, -1)
    recipe = replace(PRESETS["medium"], features=8, prior=False, warmup_candidates=1,
                     warmup_fraction=0.0, lr=0.02, network_lr=0.004, latent_eps=1e-7)
    seen: list[tuple[float, float]] = []
    original = Optimisation.set_lr

    def record(optimizer, networks, latents):
        seen.append((networks, latents))
        original(optimizer, networks, latents)

    monkeypatch.setattr(Optimisation, "set_lr", staticmethod(record))
    optimisation = Optimisation(target, height, width, quality_to_lambda(3.0), recipe,
                                Budget(8, None, 0.0))
    _, optimizer = optimisation.new_candidate(0)
    assert {g["name"]: g["eps"] for g in optimizer.param_groups}["latents"] == 1e-7
    optimisation.run()
    networks, latents = seen[0]
    assert latents == pytest.approx(0.02) and networks == pytest.approx(0.004)
    for networks, latents in seen[1:-1]:  # the main phase: one factor for both
        assert (networks - 1e-5) / (0.004 - 1e-5) == pytest.approx((latents - 1e-5) / (0.02 - 1e-5))

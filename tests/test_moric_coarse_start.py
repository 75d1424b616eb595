"""The coarse-to-fine start (`moric/training/coarse_start.py`): the half-size
run's latents and networks moved to the full size, and the phase in an encode."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from segpic_codec import codecs
from segpic_codec.moric.bitstream.param_prior import load_prior_arrays
from segpic_codec.moric.networks.latents import split_grids
from segpic_codec.moric.networks.model import Architecture, MoricModel
from segpic_codec.moric.training import coarse_start
from segpic_codec.moric.training.prior import apply_prior
from segpic_codec.moric.training.recipe import PRESETS


def smooth_image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([np.sin(5 * x + 1), np.cos(4 * y), np.sin(3 * (x + y))], axis=-1)
    return np.round(127.5 + 100 * image).astype(np.uint8)


def half_model(height: int, width: int, seed: int = 0) -> MoricModel:
    """A half-size model from the shipped prior, with random integer latents."""
    recipe = PRESETS["medium"]
    model = MoricModel(height, width, Architecture(recipe.features, recipe.activation, 1),
                       recipe.latent_gain, seed=seed)
    apply_prior(model, load_prior_arrays(recipe.features, recipe.activation))
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for grid in split_grids(model.latents.values, model.latents.canvas):
            grid.copy_(torch.from_numpy(rng.integers(-3, 4, grid.shape)) / model.latents.gain)
    return model


def test_plan_coarse_splits_the_budget():
    plan = coarse_start.plan_coarse(180, None, 0.22, 512, 768)
    assert (plan.half_steps, plan.half_time, plan.full_steps) == (160, None, 140)
    assert plan.cost(160) == plan.cost(3) == 40  # the share given, however many were made
    assert coarse_start.plan_coarse(180, None, 0.0, 512, 768) is None
    assert coarse_start.plan_coarse(180, None, 0.22, 96, 768) is None  # too small
    assert coarse_start.plan_coarse(2, None, 0.22, 512, 768) is None  # too few to split
    timed = coarse_start.plan_coarse(None, 100.0, 0.22, 512, 768)  # a time limit only
    assert (timed.half_steps, timed.half_time, timed.full_steps) == (None, 22.0, None)
    assert timed.cost(160) == 40  # the steps made, at their cost
    both = coarse_start.plan_coarse(180, 100.0, 0.22, 512, 768)
    assert (both.half_steps, both.half_time, both.full_steps) == (160, 22.0, 140)


def test_moved_latents_are_the_half_grids_one_level_down():
    half = half_model(64, 80)
    full = coarse_start.moved_latents(half, 128, 160)
    half_grids = split_grids(half.latents.values.detach() * half.latents.gain,
                             half.latents.canvas)
    full_grids = split_grids(full, MoricModel(128, 160, Architecture(24, "gelu", 1)).canvas)
    assert not full_grids[0].any()
    for g in range(1, 7):
        assert torch.equal(full_grids[g], half_grids[g - 1])


@pytest.mark.parametrize("bicubic", [True, False])
def test_the_full_start_draws_the_half_image(monkeypatch, bicubic):
    """The full model started from the half one draws (about) the half image at
    twice its size. Keeping the prior's finest upsampling level instead of the
    bicubic one scales every grid that reaches the synthesis: far off."""
    prior = load_prior_arrays(24, "gelu")
    if not bicubic:
        monkeypatch.setattr(coarse_start, "BICUBIC_TAPS", tuple(prior["upsampling.taps"][0]))
    half = half_model(64, 80)
    full = MoricModel(128, 160, Architecture(24, "gelu", 1), half.latents.gain)
    apply_prior(full, coarse_start.moved_networks(half, prior))
    coarse_start.copy_local_networks(half, full)
    with torch.no_grad():
        full.latents.values.copy_(coarse_start.moved_latents(half, 128, 160) / full.latents.gain)
        small = half.decode_latents(half.latents.quantized("hard")).reshape(3, 64, 80)
        large = full.decode_latents(full.latents.quantized("hard")).reshape(3, 128, 160)
    boxed = large.reshape(3, 64, 2, 80, 2).mean(dim=(2, 4))
    error = float((boxed - small).abs().mean() / small.abs().mean())
    # (a grid 0 of zeros and the halo of the 3x3 layers leave a little)
    assert (error < 0.1) if bicubic else (error > 0.2)


def test_an_encode_spends_a_share_at_half_size():
    image = smooth_image(128, 160)
    states: list[dict] = []
    encoder = codecs.load_encoder("moric", device="cpu", steps=16, progress=states.append)
    result = encoder.encode(image, quality=3.0, regions="none")
    _, fields = codecs.describe(result.data)
    # round(0.22 * 16) = 4 of the 16 steps' worth went to 16 half-size steps,
    # and the header counts them at that cost
    assert fields["steps"] == 16
    assert states[-1]["step"] == 10 and states[-1]["total"] == 12
    assert states[0]["phase"] == "half size 10/16" and states[0]["step"] == 0
    assert "phase" not in states[-1]
    assert np.array_equal(codecs.decode(result.data), result.reconstruction)
    assert encoder.encode(image, quality=3.0, regions="none").data == result.data


def test_one_coarse_level_and_a_time_limit(monkeypatch):
    """The half-size run has no coarse phase of its own, with a step budget or a
    time limit (a 256-pixel image would otherwise halve twice)."""
    from segpic_codec.moric.training import encoder as encoder_module

    calls = []
    real = encoder_module.half_size
    monkeypatch.setattr(encoder_module, "half_size",
                        lambda *args: calls.append(args[1:3]) or real(*args))
    image = smooth_image(256, 256)
    codecs.load_encoder("moric", device="cpu", steps=8).encode(image, quality=3.0,
                                                              regions="none")
    assert calls == [(256, 256)]
    calls.clear()
    result = codecs.load_encoder("moric", device="cpu", time_limit=3).encode(
        image, quality=3.0, regions="none")
    assert calls == [(256, 256)]
    assert np.array_equal(codecs.decode(result.data), result.reconstruction)


def test_two_coarse_levels(monkeypatch):
    """With coarse_levels 2 the half run starts from a quarter-size run of its
    own share; the header still counts the budget, and the file decodes to the
    encoder's reconstruction."""
    from segpic_codec.moric.training import encoder as encoder_module

    monkeypatch.setitem(PRESETS, "medium", replace(PRESETS["medium"], coarse_levels=2))
    calls = []
    real = encoder_module.half_size
    monkeypatch.setattr(encoder_module, "half_size",
                        lambda *args: calls.append(args[1:3]) or real(*args))
    states: list[dict] = []
    image = smooth_image(256, 256)
    result = codecs.load_encoder("moric", device="cpu", steps=24,
                                 progress=states.append).encode(image, quality=3.0,
                                                                regions="none")
    assert calls == [(256, 256), (128, 128)]
    # round(0.22 * 24) = 5 steps' worth at half size: 20 half steps, of which
    # round(0.22 * 20) = 4 went to 16 quarter-size steps
    phases = [s["phase"] for s in states if "phase" in s]
    assert phases == ["quarter size 10/16", "half size 10/16"]
    assert codecs.describe(result.data)[1]["steps"] == 24
    assert np.array_equal(codecs.decode(result.data), result.reconstruction)


def test_learning_rates_ramp_after_a_coarse_start():
    """After a coarse start the rates rise from 2 % of the cosine's over the
    ramp's share of the main phase; without one, or past the ramp, they follow
    the cosine."""
    from segpic_codec.moric.training.encoder import Budget, Optimisation

    recipe = replace(PRESETS["medium"], coarse_lr_ramp=0.1, coarse_ramp_on="both",
                     network_lr=0.005)
    target = torch.rand(3, 64 * 64)
    run = Optimisation(target, 64, 64, 0.01, recipe, Budget(10, None, 0.0), seed=0)
    cosine = run.learning_rates(0.0)
    assert cosine == pytest.approx((0.005, recipe.lr))
    run.coarse = half_model(32, 32)
    start = run.learning_rates(0.0)
    assert start == pytest.approx((recipe.lr_min + 0.02 * (0.005 - recipe.lr_min),
                                   recipe.lr_min + 0.02 * (recipe.lr - recipe.lr_min)))
    half_way = run.learning_rates(0.05)
    assert half_way[1] == pytest.approx(
        recipe.lr_min + 0.5 * (recipe.lr - recipe.lr_min) * 0.5 * (1 + np.cos(np.pi * 0.05)))
    assert run.learning_rates(0.3) == Optimisation(
        target, 64, 64, 0.01, recipe, Budget(10, None, 0.0), seed=0).learning_rates(0.3)
    run.recipe = replace(recipe, coarse_ramp_on="networks")
    assert run.learning_rates(0.0) == pytest.approx((start[0], recipe.lr))
    # from the prior, without a coarse start: ramped only with ramp_from_prior
    prior = load_prior_arrays(recipe.features, recipe.activation)
    plain = Optimisation(target, 64, 64, 0.01, recipe, Budget(10, None, 0.0), seed=0,
                         prior=prior)
    assert plain.learning_rates(0.0) == cosine
    plain.recipe = replace(recipe, ramp_from_prior=True)
    assert plain.learning_rates(0.0) == pytest.approx(start)
    with pytest.raises(ValueError, match="coarse_ramp_on 'weights'"):
        replace(recipe, coarse_ramp_on="weights")


def test_a_target_steers_the_full_run_by_the_coarse_drift():
    """With a target, the half-size run trains at the controller's first λ and
    the full-size run is steered with the coarse start's drift table, in its
    own progress (a time limit's origin is past the half run's time)."""
    from segpic_codec.moric.training.encoder import Budget, Optimisation
    from segpic_codec.moric.training.rate_control import COARSE, PLAIN, Goal, LambdaController

    image = smooth_image(128, 160)
    target = torch.from_numpy(image).permute(2, 0, 1).reshape(3, -1).float() / 255.0
    recipe = PRESETS["medium"]
    prior = load_prior_arrays(recipe.features, recipe.activation)
    controller = LambdaController(Goal("rate", lambda _: 0.5))
    assert controller.drift is PLAIN
    first = controller.lmbda
    run = Optimisation(target, 128, 160, 0.0, recipe, Budget(40, None, 0.0), seed=0,
                       prior=prior, controller=controller)
    run.run()
    assert run.coarse is not None and controller.drift is COARSE
    # the full run's 31 steps: updates from 5 % of them, none past the hold
    assert [u[0] for u in controller.history][:2] == pytest.approx([2 / 31, 4 / 31],
                                                                    abs=1e-4)
    assert all(u[0] <= controller.hold + 1e-9 for u in controller.history)
    assert first != controller.lmbda
    run.origin = 0.25
    assert run.own_progress(0.25) == 0.0 and run.own_progress(1.0) == 1.0
    assert run.own_progress(0.625) == pytest.approx(0.5)


@pytest.mark.parametrize("height,width", [(129, 160), (128, 163), (131, 133)])
def test_moved_latents_of_an_odd_side(height, width):
    """An odd side: the half image drops its last row or column, so a half grid
    can be one short of its full-size counterpart; the edge is repeated."""
    half = half_model(height // 2, width // 2)
    full = coarse_start.moved_latents(half, height, width)
    half_grids = split_grids(half.latents.values.detach() * half.latents.gain,
                             half.latents.canvas)
    full_grids = split_grids(full, MoricModel(height, width, Architecture(24, "gelu", 1)).canvas)
    assert not full_grids[0].any()
    for g in range(1, 7):
        source, grid = half_grids[g - 1], full_grids[g]
        rows, cols = min(grid.shape[0], source.shape[0]), min(grid.shape[1], source.shape[1])
        assert grid.shape[0] - rows <= 1 and grid.shape[1] - cols <= 1
        assert torch.equal(grid[:rows, :cols], source[:rows, :cols])
        assert torch.equal(grid[-1, :cols], source[rows - 1, :cols])
        assert torch.equal(grid[:, -1], grid[:, cols - 1])


def test_an_encode_of_odd_sides_starts_coarse():
    """A coarse start on an image with two odd sides (a half grid one short)."""
    image = smooth_image(131, 133)
    result = codecs.load_encoder("moric", device="cpu", steps=16).encode(
        image, quality=3.0, regions="none")
    assert np.array_equal(codecs.decode(result.data), result.reconstruction)

"""MoRIC's network prior: where an encode's networks start, and its Reptile fit."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segpic_codec.moric.bitstream.param_prior import load_prior_arrays, prior_path
from segpic_codec.moric.networks.model import Architecture, MoricModel
from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.prior import apply_prior, network_state, save_prior
from segpic_codec.moric.training.prior_fit import FitSettings, fit_prior
from segpic_codec.moric.training.recipe import PRESETS


def _model(features: int = 8, regions: int = 1, seed: int = 0, size: int = 64) -> MoricModel:
    labels = None if regions == 1 else (np.arange(size * size) % regions).reshape(size, size)
    return MoricModel(size, size, Architecture(features, "gelu", regions), seed=seed,
                      labels=labels)


def test_apply_prior_sets_every_network_and_every_region_from_one_lsn():
    prior = network_state(_model(seed=1))
    model = _model(regions=3, seed=2)
    apply_prior(model, prior)
    again = network_state(model)
    assert again.keys() == prior.keys()
    for key, value in prior.items():
        assert torch.equal(again[key], value), key
    for lsn in model.synthesis.lsns:
        for name, p in lsn.named_parameters():
            assert torch.equal(p, prior[f"lsn.{name}"])


def test_a_prior_of_another_width_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        apply_prior(_model(features=8), network_state(_model(features=12)))


def test_saved_prior_loads_back_bit_for_bit(tmp_path):
    from safetensors.torch import load_file

    state = network_state(_model(seed=3))
    path = tmp_path / "p.safetensors"
    save_prior(path, state, 8, "gelu", "test")
    loaded = load_file(str(path))
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def _target(size: int = 64, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 1, size * size).reshape(1, -1)
    return torch.from_numpy(np.clip(base + 0.1 * rng.standard_normal((3, size * size)), 0, 1)
                            ).float()


def test_an_encode_from_a_prior_starts_there_without_a_competition():
    recipe = replace(PRESETS["medium"], features=8).with_steps(20)
    prior = network_state(_model(seed=5))
    target = _target()
    opt = Optimisation(target, 64, 64, 1e-3, recipe, Budget(20, None, 0.0), prior=prior)
    model, _ = opt.warmup()
    assert opt.step == 0  # no candidate trained: they would all start alike
    state = network_state(model)
    for key, value in prior.items():
        if key != "lsn.b_res":
            assert torch.equal(state[key], value), key
    # the output bias still starts at the image's mean colour
    assert torch.allclose(model.synthesis.lsns[0].b_res[2], target.mean(dim=1))


def test_without_a_prior_the_warmup_competes():
    recipe = replace(PRESETS["medium"], features=8).with_steps(60)
    opt = Optimisation(_target(), 64, 64, 1e-3, recipe, Budget(60, None, 0.0))
    opt.warmup()
    assert opt.step > 0


def test_the_shipped_prior_fits_the_default_preset():
    recipe = PRESETS["medium"]
    assert prior_path(recipe.features, recipe.activation).is_file()
    prior = load_prior_arrays(recipe.features, recipe.activation)
    assert prior is not None
    assert all(np.isfinite(v).all() for v in prior.values())
    apply_prior(_model(features=recipe.features), prior)  # fits: no error


def test_no_prior_for_an_architecture_without_one():
    assert load_prior_arrays(7, "relu") is None


@pytest.mark.parametrize("outer_rate", [0.0, 1.0])
def test_reptile_moves_the_prior_by_its_outer_rate(tmp_path, outer_rate):
    rng = np.random.default_rng(0)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (80, 72, 3), dtype=np.uint8)).save(image)
    start = network_state(_model(seed=0))
    settings = FitSettings(iterations=1, inner_steps=4, crop=64, outer_rate=outer_rate,
                           features=8)
    rows: list[dict] = []
    prior = fit_prior([image], settings, rows.append, start=start)
    moved = sum(float((prior[k] - start[k]).abs().sum()) for k in start)
    assert (moved > 0) == (outer_rate > 0)
    assert len(rows) == 1 and math.isfinite(rows[0]["psnr"])


# -- parameters coded as differences from the prior ---------------------------

def _coded_modules(seed: int, regions: int = 2) -> dict[str, torch.nn.Module]:
    return _model(regions=regions, seed=seed).sent_modules()


def test_prior_coded_parameters_decode_to_the_same_integers_in_fewer_bytes():
    from segpic_codec.moric.bitstream.param_quant import (
        encode_parameters,
        load_parameters,
        search_steps,
    )
    from segpic_codec.moric.bitstream.parameters import read_parameters
    from segpic_codec.moric.file_format import Header

    model = _model(regions=2, seed=7)
    prior = {k: v.numpy() for k, v in network_state(model).items()}
    with torch.no_grad():  # an encode moves the networks a little from the prior
        gen = torch.Generator().manual_seed(0)
        for p in model.network_parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=gen))
    exact = [p.detach().clone() for p in model.network_parameters()]

    def evaluate(module: str) -> tuple[float, float]:  # the error quantisation makes
        error = sum(float(((p.detach() - e) ** 2).sum()) for p, e in
                    zip(model.network_parameters(), exact, strict=True))
        return 10.0 * error, 0.0

    coding = search_steps(model.sent_modules(), evaluate, 1e-3, 4096, prior)
    with_prior = encode_parameters(model.sent_modules(), coding, prior)
    without = encode_parameters(model.sent_modules(), coding)
    assert len(with_prior) < len(without)
    expected = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fresh = _model(regions=2, seed=8)
    header = Header(2.0, "medium", 10, False, model.arch.features, model.arch.activation, 2,
                    0, 0, {k: (c.exponent, c.model) for k, c in coding.items()},
                    prior_coded=True)
    integers = read_parameters(header, with_prior, prior)
    load_parameters(fresh.sent_modules(), integers)
    for key in expected:
        if not key.startswith("latents"):
            assert torch.equal(fresh.state_dict()[key], expected[key]), key
    # read without the prior, the same stream gives other networks
    other = _model(regions=2, seed=8)
    header.prior_coded = False
    load_parameters(other.sent_modules(), read_parameters(header, with_prior))
    assert not torch.equal(other.arm.w_out, fresh.arm.w_out)
    assert not torch.equal(other.synthesis.gmn.w1, fresh.synthesis.gmn.w1)
    assert set(integers) == {"arm", "upsampling", "gmn", "lsn"}


def test_the_header_flag_needs_range_coded_parameters():
    from segpic_codec.moric import layout
    from segpic_codec.moric.errors import MoricFormatError
    from segpic_codec.moric.file_format import KINDS, MODULES, Header

    coding = {(m, k): (8, 3) for m in MODULES for k in KINDS}
    header = Header(2.0, "medium", 10, False, 24, "gelu", 1, -3, 3, coding, prior_coded=True)
    payload = bytearray(layout.pack(header))
    assert layout.unpack(bytes(payload)).prior_coded
    assert layout.describe(bytes(payload))["network_prior"] == 1
    payload[8] &= ~4  # prior-coded but exp-Golomb: no encoder writes that
    with pytest.raises(MoricFormatError, match="flags"):
        layout.unpack(bytes(payload))
    payload[8] = 32  # an unknown flag
    with pytest.raises(MoricFormatError, match="flags"):
        layout.unpack(bytes(payload))


def test_a_file_naming_a_missing_prior_is_a_format_error(monkeypatch):
    from segpic_codec.moric.bitstream import param_prior
    from segpic_codec.moric.errors import MoricFormatError

    monkeypatch.setattr(param_prior, "shipped_weights_root", lambda: Path("/nonexistent"))
    param_prior.load_prior_arrays.cache_clear()
    try:
        with pytest.raises(MoricFormatError, match="does not have"):
            param_prior.required_prior(24, "gelu")
    finally:
        param_prior.load_prior_arrays.cache_clear()


# prior-coded files decode only with exactly these values: the shipped prior
# never changes (a new prior gets a new PRIOR_ID and file name)
SHIPPED_PRIOR_SHA256 = {
    "prior-1-f24-gelu.safetensors":
        "07c025fb517e91a1a8a8ffc9d9bed97d0b82e81502b84b00e848598c7868bf03",
}


def test_the_shipped_priors_never_change():
    import hashlib

    folder = prior_path(24, "gelu").parent
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in folder.glob("*.safetensors")}
    assert found == SHIPPED_PRIOR_SHA256

"""The authors' SegPIC (GityuxiLiu/SegPIC-for-Image-Compression): our `segpic`
configuration is their network, and `segpic import-weights` converts their
checkpoints. Checked against the test vector in
$SEGPIC_SHARED/reference/segpic-authors (a reduced-width checkpoint in their exact
format, an input, and their outputs and intermediates; see its README.md)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED  # $SEGPIC_SHARED, default ../shared

from segpic_codec.errors import CodecError, SegpicError
from segpic_codec.segpic.config import get_config
from segpic_codec.segpic.networks.model import SegPIC
from segpic_codec.segpic.weights import authors
from segpic_codec.segpic.weights.import_weights import import_checkpoint, template_for

REF = SHARED / "reference" / "segpic-authors"
CKPT = REF / "checkpoint.pth.tar"
needs_ref = pytest.mark.skipif(not (REF / "README.md").is_file(),
                               reason=f"authors' test vector not found at {REF}")

AUTHORS_PARAMETERS = 83_503_971  # SegPIC(192, 320), the README of the test vector
TEST_PARAMETERS = 578_713  # the reduced-width test checkpoint

# The README's tolerances for a faithful float32 re-implementation ...
TOLERANCE = {"x_hat": 2e-5, "y": 2e-4, "y_hat": 2e-4, "mu": 2e-4, "scale": 2e-4,
             "latent_means": 2e-4, "latent_scales": 2e-4, "latent_means_hs": 2e-4,
             "latent_scales_hs": 2e-4, "y_likelihoods": 1e-5, "z_likelihoods": 1e-5,
             "pprime_likelihoods": 1e-5, "p_likelihoods": 1e-5}
# ... and, for the intermediates it states none for, the same 2e-4 as for y
DEFAULT_TOLERANCE = 2e-4
SYMBOLS = ("pprime_symbols", "p_symbols", "z_symbols", "y_symbols")


def test_segpic_config_has_the_authors_parameter_count():
    with torch.device("meta"):
        model = SegPIC(get_config("segpic"))
    assert sum(p.numel() for p in model.parameters()) == AUTHORS_PARAMETERS


@needs_ref
def test_every_key_of_the_full_checkpoint_is_accounted_for():
    """Each of the 919 keys is mapped (shape checked), an alias of a mapped or
    dropped key, or dropped with a reason; each of our keys has one source."""
    template = template_for(get_config("segpic"))
    mapped = {authors.our_to_theirs(k): k for k in template}
    assert len(mapped) == len(template)
    rows = list(csv.DictReader(open(REF / "keys_full.tsv"), delimiter="\t"))
    assert len(rows) == 919
    kinds: Counter = Counter()
    params = 0
    for row in rows:
        kind, info = authors.classify(row["key"], set(mapped))
        kinds[kind] += 1
        assert kind != "unknown", row["key"]
        if kind == "dropped":
            assert info and row["kind"] != "param", row["key"]
        if kind == "mapped":
            shape = tuple(int(n) for n in row["shape_full"].split("x"))
            ours = template[mapped[info]]
            if mapped[info].endswith(".rel_bias"):
                shape = shape[::-1]  # (K, heads) -> (heads, K)
            assert tuple(ours.shape) == shape, row["key"]
            params += ours.numel()
    # the README's breakdown: 733 parameters, 96 duplicates, 77 + 13 buffers
    assert kinds == {"mapped": 733, "alias": 96, "dropped": 90}
    assert params == AUTHORS_PARAMETERS


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(REF / "inputs_outputs.safetensors"))


@pytest.fixture(scope="module")
def imported() -> SegPIC:
    state, config = import_checkpoint(CKPT)
    model = SegPIC(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


@needs_ref
def test_imported_network_matches_the_authors_outputs(imported, reference):
    from segpic_codec.segpic.weights.trace import trace

    assert sum(p.numel() for p in imported.parameters()) == TEST_PARAMETERS
    out = trace(imported, reference["x"], int(reference["grid"][0]))
    compared = 0
    for name, theirs in reference.items():
        if name not in out:
            continue
        ours = out[name]
        assert ours.shape == theirs.shape, name
        if name in SYMBOLS:
            assert torch.equal(ours, theirs), name
        else:
            diff = (ours.double() - theirs.double()).abs().max().item()
            assert diff <= TOLERANCE.get(name, DEFAULT_TOLERANCE), (name, diff)
        compared += 1
    assert compared == len(reference) - 4  # all but x, grid and the two cell maps


@needs_ref
def test_grid_cells_match(reference):
    from segpic_codec.segpic.networks.regions import grid_labels

    assert torch.equal(grid_labels(32, 32, 4).int(), reference["cells_quarter"])
    assert torch.equal(grid_labels(8, 8, 4).int(), reference["cells_sixteenth"])


@needs_ref
@pytest.mark.parametrize("exact_entropy", [False, True])
def test_bitstream_path_decodes_the_authors_symbols(imported, reference, monkeypatch,
                                                     exact_entropy):
    """Both entropy paths code the authors' symbols. The float64 path (files made
    before the exact one) also decodes the authors' reconstruction within the
    README's tolerance; the exact path's fixed-point means differ from float by
    about 4e-4 here, which moves the reconstruction by at most about 3e-4
    (0.07 of a level), so it gets 1e-3."""
    streams, x_hat = imported.compress(reference["x"], 0.0, 4, exact_entropy=exact_entropy)
    assert streams.exact_entropy == exact_entropy
    path = imported._entropy_path(exact_entropy)
    symbols: list[torch.Tensor] = []
    finish = type(path).finish_slice

    def record(self, i, means, decoded, sym, mu):
        symbols.append(sym.to(torch.int32))
        return finish(self, i, means, decoded, sym, mu)

    monkeypatch.setattr(type(path), "finish_slice", record)
    decoded = imported.decompress(streams, 0.0, 4)
    assert torch.equal(decoded, x_hat)
    assert torch.equal(torch.cat(symbols, dim=1), reference["y_symbols"])
    tolerance = 1e-3 if exact_entropy else TOLERANCE["x_hat"]
    assert (decoded - reference["x_hat"].double()).abs().max().item() <= tolerance
    p1 = path.p_transform.decode(streams.prototype_streams[0], 16)
    assert torch.equal(p1.t().reshape(1, -1, 4, 4).int(), reference["pprime_symbols"])
    p2 = path.p_entropy.decode(streams.prototype_streams[1], 16)
    assert torch.equal(p2.t().reshape(1, -1, 4, 4).int(), reference["p_symbols"])


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _broken(tmp_path: Path, edit) -> Path:
    data = _load(CKPT)
    edit(data["state_dict"])
    out = tmp_path / "broken.pth.tar"
    torch.save(data, out)
    return out


@needs_ref
@pytest.mark.parametrize("key,edit,words", [
    ("module.h_mean_s.6.0.weight", lambda sd, k: sd.pop(k), "is missing"),
    ("module.g_sb.2.weight", lambda sd, k: sd.__setitem__(k, sd[k][:, :-1]), "has shape"),
    ("module.g_a1.2.conv_b.0.attn.relative_position_bias_table",
     lambda sd, k: sd.__setitem__(k, sd[k].t().contiguous()), "has shape"),
    ("module.h_a.2.weight", lambda sd, k: sd.__setitem__(k, sd[k][:-1]), "has shape"),
    ("module.cc_mean_transforms.9.0.weight", lambda sd, k: sd.pop(k), "is missing"),
    ("module.g_ab.1.gamma_reparam.pedestal", lambda sd, k: sd.__setitem__(k, torch.zeros(2)),
     "one finite number"),
    ("module.extra.weight", lambda sd, k: sd.__setitem__(k, torch.zeros(1)), "unexpected key"),
    ("module.g_s0.1.conv_groups.0.weight", lambda sd, k: sd.__setitem__(k, sd[k] + 1),
     "differs from its other registration"),
])
def test_bad_checkpoint_names_the_key(tmp_path, key, edit, words):
    path = _broken(tmp_path, lambda sd: edit(sd, key))
    with pytest.raises(SegpicError) as info:
        import_checkpoint(path)
    message = str(info.value)
    assert words in message and key.removeprefix("module.") in message
    assert "\n" not in message


@needs_ref
def test_unprefixed_and_old_entropy_bottleneck_names_import(tmp_path, imported):
    def rename(sd: dict) -> None:
        for key in list(sd):
            new = key.removeprefix("module.")
            for old, kind in (("_matrix", "_matrices."), ("_bias", "_biases."),
                              ("_factor", "_factors.")):
                head, _, idx = new.rpartition(old)
                if head.startswith("entropy_bottleneck") and idx.isdigit():
                    new = f"{head}{kind}{idx}"
            sd[new] = sd.pop(key)

    state, _ = import_checkpoint(_broken(tmp_path, rename))
    for key, value in imported.state_dict().items():
        assert torch.equal(state[key], value), key


@needs_ref
def test_import_weights_command_makes_a_working_weights_folder(tmp_path):
    from click.testing import CliRunner

    from segpic_codec.cli import main, weights_cmd

    assert weights_cmd.import_weights.name in main.commands  # importing registers it
    from segpic_codec.segpic.codec import Codec
    from segpic_codec.segpic.layout import read_header
    from segpic_codec.segpic.weights.folder import read_manifest

    out = tmp_path / "authors"
    result = CliRunner().invoke(main, ["import-weights", str(CKPT), str(CKPT),
                                       "--lambdas", "0.0018,0.0035", "--out", str(out)])
    assert result.exit_code == 0, result.output
    _, manifest = read_manifest(out)
    assert manifest["levels"] == 2 and manifest["parameters"] == TEST_PARAMETERS
    codec = Codec.load(out, device="cpu")
    assert codec.fixed_rate and codec.num_qualities == 2
    image = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    encoded = codec.encode(image, quality=2)
    assert list(codec.model._networks) == [1]  # only quality 2's network was loaded
    assert read_header(encoded.data)[0].weights_id == manifest["weights_id"]
    assert np.array_equal(Codec.load(out, device="cpu").decode(encoded.data),
                          encoded.reconstruction)
    with pytest.raises(CodecError, match="whole number"):
        codec.encode(image, quality=1.5)
    # wrong order of lambdas, wrong count: one-line errors
    for args in (["--lambdas", "0.01,0.001"], ["--lambdas", "0.01"], []):
        bad = CliRunner().invoke(main, ["import-weights", str(CKPT), str(CKPT),
                                        "--out", str(tmp_path / "x"), *args])
        assert bad.exit_code == 2 and "lambda" in bad.output

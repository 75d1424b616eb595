"""The codec contract: each codec declares its options once (`<codec>/options.py`),
and the command line, the Python API, `batch` and the Pillow plugin read that
declaration; a codec's encoder returns its payload and streams, and the shared
layer (`codecs.CodedImage.frame`) packs the frame and the metadata once."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image

import segpic_codec.pillow  # noqa: F401 - registers the SPIC format
from segpic_codec import codecs, container
from segpic_codec.cli import main
from segpic_codec.cli.base import EncoderSetup, codec_options
from segpic_codec.cli.batch_worker import BatchOptions
from segpic_codec.errors import CodecError, SegpicError
from segpic_codec.moric import options as moric_options
from segpic_codec.moric.training.recipe import PRESETS
from segpic_codec.options import CodecOption, CodecOptions
from segpic_codec.segpic import options as segpic_options

METADATA = {"icc": b"\x00icc profile", "xmp": b"<x:xmpmeta/>"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def extra_option(monkeypatch):
    """SegPIC's declaration with one more encode option: whatever reads the
    declaration sees it, whatever keeps its own list does not."""
    option = CodecOption("sharpness", "int", "an option declared for this test.", "encode",
                         minimum=0, maximum=9)
    declared = segpic_options.OPTIONS
    monkeypatch.setattr(segpic_options, "OPTIONS",
                        dataclasses.replace(declared, options=(*declared.options, option)))
    return option


def _flags(command: click.Command) -> dict[str, click.Option]:
    return {flag: p for p in command.params if isinstance(p, click.Option) for flag in p.opts}


def test_cli_flags_come_from_the_declarations():
    flags = _flags(main.get_command(click.Context(main), "encode"))
    for entry in codecs.CODECS.values():
        for option in entry.options().options:
            assert (option.flag in flags) == option.cli, option.name
            if option.cli:
                assert flags[option.flag].help.startswith(f"{entry.name}: ")
    assert not {"--exact"} & set(flags)  # declared, but no flag (SEGPIC_EXACT)
    batch_flags = _flags(main.get_command(click.Context(main), "batch"))
    assert {o.flag for e in codecs.CODECS.values() for o in e.options().options if o.cli} \
        <= set(batch_flags)


def test_preset_help_lists_every_preset():
    r = run("encode", "--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "placebo" in PRESETS
    for name, recipe in PRESETS.items():
        assert name in text and f"{name} {recipe.steps}" in text
    r = run("encode", "in.png", "out.spic", "--codec", "moric", "--preset", "ludicrous")
    assert r.exit_code == 2 and "placebo" in r.output


def test_a_new_declared_option_reaches_the_cli(extra_option):
    @click.command()
    @codec_options
    def command(codec, device, **options):
        click.echo(repr(options))

    r = CliRunner().invoke(command, ["--sharpness", "3"])
    assert r.exit_code == 0, r.output
    assert "'sharpness': 3" in r.output
    r = CliRunner().invoke(command, ["--sharpness", "12"])
    assert r.exit_code == 2 and "--sharpness" in r.output
    setup = EncoderSetup("segpic", "cpu", {"sharpness": 3, "grid": None})
    assert setup.options == {"sharpness": 3} and setup.loader == {}
    with pytest.raises(click.UsageError, match="--sharpness does not apply to --codec moric"):
        EncoderSetup("moric", "cpu", {"sharpness": 3})


def test_the_python_api_splits_options_by_the_declaration(extra_option):
    loader, rest = codecs.split_options("moric", {"steps": 3, "preset": "fast",
                                                  "regions": "none", "device": "cpu",
                                                  "roi": None})
    assert loader == {"steps": 3, "preset": "fast", "device": "cpu"}
    assert rest == {"regions": "none"}
    assert set(loader) - {"device"} <= set(moric_options.OPTIONS.names("loader"))
    assert codecs.split_options("segpic", {"sharpness": 1, "model": "tiny"}) \
        == ({"model": "tiny"}, {"sharpness": 1})
    with pytest.raises(CodecError, match="moric encoder takes no option grid"):
        codecs.split_options("moric", {"grid": 2})
    with pytest.raises(CodecError, match="moric encoder takes no option weights"):
        codecs.load_encoder("moric", weights="somewhere")
    with pytest.raises(CodecError, match="segpic decoder takes no option steps"):
        codecs.load_decoder(container.FrameHeader(2, "segpic", 8, 8, bytes(7), [4], 0),
                            steps=3)
    assert "sharpness" in codecs.all_option_names()  # what the Pillow plugin passes on


def test_batch_options_carry_the_declared_options():
    options = BatchOptions(decode=False, codec="moric", device="cpu",
                           codec_options=(("preset", "fast"), ("regions", "none")))
    setup = options.encoder_setup()
    assert setup.loader == {"preset": "fast"} and setup.options == {"regions": "none"}
    weights = BatchOptions(decode=True, codec="segpic", device="cpu",
                           codec_options=(("weights", "w"),))
    assert weights.weights == "w" and options.weights is None


def test_batch_refuses_an_option_of_another_codec(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(random_image(8, 8)).save(src / "a.png")
    r = run("batch", src, tmp_path / "dst", "--codec", "moric", "--grid", "2")
    assert r.exit_code == 2 and "--grid does not apply to --codec moric" in r.output


def test_pillow_passes_declared_options_to_the_codec():
    image = Image.fromarray(random_image(12, 16))
    buffer = io.BytesIO()
    image.save(buffer, format="SPIC", codec="moric", quality=2.0, steps=2, preset="fast",
               regions="none", device="cpu", exif=b"ignored: not a codec option")
    _, fields = codecs.describe(buffer.getvalue())
    assert (fields["steps"], fields["preset"], fields["regions"]) == (2, "fast", 1)
    with pytest.raises(ValueError, match="moric encoder takes no option grid"):
        image.save(io.BytesIO(), format="SPIC", codec="moric", steps=2, grid=2)


def test_moric_checks_its_budget_once_when_loaded():
    with pytest.raises(SegpicError, match="unknown preset 'ludicrous'"):
        codecs.load_encoder("moric", device="cpu", preset="ludicrous")
    with pytest.raises(SegpicError, match="steps must be a whole number"):
        codecs.load_encoder("moric", device="cpu", steps=0)
    with pytest.raises(SegpicError, match="time_limit must be positive"):
        codecs.load_encoder("moric", device="cpu", time_limit=-1.0)


def test_the_frame_and_metadata_are_packed_once(tiny_weights, monkeypatch):
    pixels = random_image(20, 30)
    encoder = codecs.load_encoder("segpic", device="cpu", weights=tiny_weights)
    coded = encoder.coder.encode_streams(pixels, quality=3.0)
    assert coded.codec == "segpic" and (coded.width, coded.height) == (30, 20)
    plain = codecs.encode(pixels, quality=3.0, device="cpu", weights=tiny_weights)
    calls = []
    pack = container.pack
    monkeypatch.setattr(container, "pack", lambda *a, **k: calls.append(a) or pack(*a, **k))
    result = codecs.encode(pixels, quality=3.0, device="cpu", weights=tiny_weights,
                           metadata=METADATA)
    assert len(calls) == 1
    # the same bytes as packing the codec's payload and streams with the metadata,
    # and as adding the metadata to the file without (the earlier two-pass way)
    assert result.data == pack("segpic", 30, 20, coded.payload, coded.streams, METADATA)
    assert result.data == container.with_metadata(plain.data, METADATA)
    assert plain.data == pack("segpic", 30, 20, coded.payload, coded.streams)
    assert container.read_frame(result.data).metadata == METADATA
    decoded = [codecs.decode(data, weights=tiny_weights, device="cpu")
               for data in (result.data, plain.data)]
    assert np.array_equal(*decoded)


def test_declarations_import_no_torch_or_numpy():
    code = ("import sys\n"
            "import segpic_codec.segpic.options, segpic_codec.moric.options\n"
            "from segpic_codec import codecs\n"
            "names = codecs.all_option_names()\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy'})\n"
            "assert not heavy, heavy\nprint(','.join(names))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert {"grid", "preset", "exact", "roi"} <= set(done.stdout.strip().split(","))


def test_an_option_is_declared_once():
    with pytest.raises(ValueError, match="declared twice"):
        CodecOptions((CodecOption("grid", "int", "", "encode"),
                      CodecOption("grid", "int", "", "loader")))
    with pytest.raises(ValueError, match="declared twice"):
        CodecOptions((CodecOption("device", "str", "", "loader"),))


def test_one_registry_line_per_codec():
    """The registry line is all the shared layer knows of a codec: its frame id
    (read by the container), its package and its three modules."""
    ids = [entry.id for entry in codecs.CODECS.values()]
    assert len(set(ids)) == len(ids) and all(0 < i < 256 for i in ids)
    assert container.CODEC_IDS == {name: e.id for name, e in codecs.CODECS.items()}
    for entry in codecs.CODECS.values():
        assert isinstance(entry.options(), CodecOptions)
        assert callable(entry.layout().describe_frame)
        frontend = entry.frontend()
        assert callable(frontend.load_encoder) and callable(frontend.load_decoder)

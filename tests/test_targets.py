"""Targets (--bpp, --size, --psnr): parsing, the quality search on known curves,
the record that `segpic info` shows, and the Python API on the tiny model."""

from __future__ import annotations

import math

import pytest
from conftest import random_image

from segpic_codec import codecs, container, target_record
from segpic_codec.errors import CodecError
from segpic_codec.quality_metrics import psnr_rgb
from segpic_codec.targets import (
    QualityGrid,
    Target,
    TargetNotMet,
    Trial,
    from_options,
    parse_size,
    search,
)

GRID = QualityGrid(1.0, 6.0, 1 / 40)
QUALITIES = [GRID.snap(1 + i / 40) for i in range(201)]


@pytest.mark.parametrize("text,size", [("40000", 40000), ("40k", 40000), ("40K", 40000),
                                       ("1.5M", 1_500_000), ("64Ki", 65536), ("2Mi", 2 << 20),
                                       ("40kB", 40000), (" 12 ", 12), (5000, 5000)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "k", "40x", "-5", "0", "0.5", "1e3", "40 kk", "nan"])
def test_bad_sizes(text):
    with pytest.raises(CodecError):
        parse_size(text)


def test_one_target_at_most():
    assert from_options() is None
    assert from_options(size="40k") == Target("size", 40000)
    assert str(from_options(psnr=33)) == "33 dB PSNR"
    for given in ({"quality": 3, "bpp": 0.5}, {"bpp": 0.5, "size": 100},
                  {"size": 100, "psnr": 30}, {"quality": 2, "psnr": 30}):
        with pytest.raises(CodecError, match="use one of"):
            from_options(**given)
    for bad in ({"bpp": 0}, {"bpp": -1}, {"psnr": float("nan")}, {"psnr": 101}):
        with pytest.raises(CodecError):
            from_options(**bad)


def _curve(kind: str, a: float, k: float, c: float):
    if kind == "size":  # bytes: about exponential in the quality
        return lambda q: Trial(q, a * math.exp(k * (q - 1) + c * (q - 1) ** 2), None)
    return lambda q: Trial(q, a + k * (q - 1) - c * (q - 1) ** 2, None)  # dB


CASES = ([("size", a, k, c, a * m) for a in (5000, 30000) for k in (0.1, 0.21, 0.4)
          for c in (0.0, 0.03) for m in (0.9, 1.02, 1.1, 1.5, 2, 3, 10)]
         + [("psnr", a, k, 0.03, a + d) for a in (26, 30) for k in (0.2, 0.35, 0.8)
            for d in (-1, 0.05, 0.1, 0.5, 1, 1.5, 3, 10)])


@pytest.mark.parametrize("kind,a,k,c,goal", CASES)
def test_search_finds_the_exact_grid_answer_in_8_trials(kind, a, k, c, goal):
    """On smooth monotone curves like SegPIC's, the answer is the exact best grid
    quality (checked against all 201), met or proven unreachable, in <= 8 trials."""
    f = _curve(kind, a, k, c)
    calls = []
    outcome = search(lambda q: calls.append(q) or f(q), Target(kind, goal), GRID, 1000)
    assert outcome.trials == len(calls) == len(set(calls)) <= 8
    if kind == "size":
        fits = [q for q in QUALITIES if f(q).value <= int(goal)]
        expected = max(fits) if fits else None
    else:
        fits = [q for q in QUALITIES if f(q).value >= goal]
        expected = min(fits) if fits else None
    assert (outcome.best.quality if outcome.met else None) == expected
    if not outcome.met:  # the closest: the end of the scale, which was tried
        assert outcome.best.quality == (1.0 if kind == "size" else 6.0)


def test_search_on_whole_levels():
    f = _curve("size", 1000, 0.3, 0)
    grid = QualityGrid(1.0, 6.0, 1.0)
    outcome = search(f, Target("size", f(4).value + 1), grid, 1000)
    assert outcome.met and outcome.best.quality == 4.0 and outcome.trials <= 4


def test_record_joins_replaces_and_leaves():
    assert target_record.read({}) is None
    alone = target_record.with_record({}, "size 40000", True)
    assert target_record.read(alone) == {"kind": "size", "value": 40000, "met": True}
    assert target_record.without(alone) == {}
    assert container.metadata_problem("xmp", alone["xmp"]) is None
    own = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
           b'1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" dc:x="1"/></rdf:RDF>'
           b'</x:xmpmeta>')
    joined = target_record.with_record({"xmp": own, "icc": b"p"}, "psnr 33", False)
    again = target_record.with_record(joined, "bpp 0.5", True)  # replaces, never adds
    assert target_record.read(again) == {"kind": "bpp", "value": 0.5, "met": True}
    assert again["xmp"].count(b"segpic:target=") == 1
    assert target_record.without(again) == {"xmp": own, "icc": b"p"}


@pytest.fixture(scope="module")
def encoder(tiny_weights):
    return codecs.load_encoder("segpic", device="cpu", weights=tiny_weights)


def test_size_target_is_the_highest_fitting_quality(encoder, tiny_weights):
    image = random_image(48, 64, seed=3)
    # the encoder drops a record that comes in: the file as a target writes it
    boxes = target_record.with_record({"icc": b"profile" * 10}, "size 12345", True)

    def size_at(quality: float) -> int:
        plain = encoder.encode(image, quality=quality).data
        return len(container.with_metadata(plain, boxes))

    low, high = size_at(1), size_at(6)
    goal = (low + high) // 2
    result = encoder.encode(image, size=goal, metadata={"icc": b"profile" * 10})
    assert len(result.data) <= goal and result.target_met and 1 <= result.trials <= 8
    assert result.target == Target("size", goal)
    frame = container.read_frame(result.data)
    assert frame.metadata["icc"] == b"profile" * 10  # metadata counted, and kept
    assert target_record.read(frame.metadata)["value"] == goal
    # one step up on the quality grid no longer fits (the same record included)
    if result.quality < 6:
        assert size_at(result.quality + 1 / 40) > goal
    # a file with the record decodes as any other
    decoded = codecs.decode(result.data, weights=tiny_weights, device="cpu")
    assert decoded.shape == image.shape


def test_bpp_target_counts_the_whole_file(encoder):
    image = random_image(48, 64, seed=4)
    result = encoder.encode(image, bpp=3.0)
    assert result.bpp <= 3.0 and result.target_met


def test_psnr_target_is_the_lowest_reaching_quality(encoder):
    image = random_image(48, 64, seed=5)
    low = encoder.encode(image, quality=1)
    high = encoder.encode(image, quality=6)
    goal = (psnr_rgb(image, low.reconstruction) + psnr_rgb(image, high.reconstruction)) / 2
    result = encoder.encode(image, psnr=goal)
    assert result.target_met and result.psnr >= goal and result.trials <= 8
    assert result.reconstruction is not None
    assert psnr_rgb(image, result.reconstruction) == pytest.approx(result.psnr)
    if result.quality > 1:
        below = encoder.encode(image, quality=result.quality - 1 / 40)
        assert psnr_rgb(image, below.reconstruction) < goal


def test_unreachable_targets(encoder):
    image = random_image(48, 64, seed=6)
    with pytest.raises(TargetNotMet, match="cannot meet 10 bytes: the lowest quality"):
        encoder.encode(image, size=10)
    with pytest.raises(TargetNotMet, match="highest quality"):
        encoder.encode(image, psnr=99)
    result = encoder.encode(image, size=10, best_effort=True)
    assert not result.target_met and result.quality == 1.0
    assert any("best effort" in note for note in result.notes)
    assert target_record.read(container.read_frame(result.data).metadata)["met"] is False
    smallest = encoder.encode(image, quality=1).data
    assert result.data == container.with_metadata(
        smallest, target_record.with_record({}, "size 10", False))


def test_pillow_save_takes_targets(tiny_weights):
    import io

    from PIL import Image

    import segpic_codec.pillow  # noqa: F401 - registers the format

    image = Image.fromarray(random_image(48, 64, seed=9))
    buf = io.BytesIO()
    image.save(buf, format="SPIC", size="2k", weights=tiny_weights, device="cpu")
    frame = container.read_frame(buf.getvalue())
    assert len(buf.getvalue()) <= 2000
    assert target_record.read(frame.metadata) == {"kind": "size", "value": 2000, "met": True}
    with pytest.raises(ValueError, match="cannot meet 50 bytes"):
        image.save(io.BytesIO(), format="SPIC", size=50, weights=tiny_weights, device="cpu")
    buf = io.BytesIO()
    with pytest.warns(UserWarning, match="best effort: cannot meet 50 bytes"):
        image.save(buf, format="SPIC", size=50, best_effort=True, weights=tiny_weights,
                   device="cpu")
    assert target_record.read(container.read_frame(buf.getvalue()).metadata)["met"] is False

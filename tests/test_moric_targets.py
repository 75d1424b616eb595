"""MoRIC's targets in one encode: the λ controller (`training.rate_control`), its
first guess and verdict (`target_fit`) and the whole path through the API and
the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_image
from PIL import Image

from segpic_codec import codecs, container, target_record
from segpic_codec.cli import main
from segpic_codec.moric import codec as moric_codec
from segpic_codec.moric.measure import preset_overridden
from segpic_codec.moric.target_fit import (
    PARAMETER_BYTES,
    REQUANTISE_FACTORS,
    ParameterBytes,
    TargetRequest,
    fit_size,
    jpeg_anchor,
)
from segpic_codec.moric.training.rate_control import (
    ANCHOR_LN_LAMBDA,
    COARSE,
    FIRST_PSNR,
    FIRST_RATE,
    FIRST_U_RANGE,
    PLAIN,
    PSNR_RESPONSE,
    RATE_RESPONSE,
    STEERED_LAMBDA_MAX,
    STEERED_LAMBDA_MIN,
    TREND,
    UNSEEN,
    Anchor,
    Drift,
    Goal,
    LambdaController,
    clamp_lambda,
    first_lambda,
    leverage,
)
from segpic_codec.moric.training.recipe import (
    LAMBDA_AT_MAX,
    LAMBDA_AT_MIN,
    lambda_to_quality,
    quality_to_lambda,
)
from segpic_codec.quality_metrics import psnr_rgb
from segpic_codec.targets import Target, TargetNotMet


class _Run:
    """A plant for the controller: a run whose end value (ln bpp or dB) at a
    fixed λ is `start_end(λ)`; a move of ln λ at progress p moves the end by
    `-slope x strength x leverage(p)`, of which `unseen` is missing from the next
    measurement (and so on per update); the image's own error against the drift
    table, `error x e^(-p / 0.13)`, sits in what is measured."""

    def __init__(self, start_end, slope: float, strength: float = 1.0,
                 unseen: float = UNSEEN, error: float = 0.0) -> None:
        self.start_end, self.slope, self.strength = start_end, slope, strength
        self.unseen, self.error = unseen, error
        self.moves: list[tuple[float, float]] = []  # (effect on the end, unseen share)
        self.end: float | None = None

    def run(self, controller: LambdaController, steps: int = 200) -> float:
        """Steer; -> the end value."""
        self.end = self.start_end(controller.lmbda)
        for step in range(steps):
            p = step / steps
            if not controller.due(p):
                continue
            self.moves = [(effect, share * self.unseen) for effect, share in self.moves]
            shown = self.end - sum(effect * share for effect, share in self.moves)
            shown += self.error * math.exp(-p / 0.13)
            before = controller.lmbda
            controller.update(*self.measure(controller, shown, p), p)
            effect = -self.slope * self.strength * leverage(p) * math.log(controller.lmbda /
                                                                           before)
            self.end += effect
            self.moves.append((effect, 1.0))
        return self.end

    @staticmethod
    def measure(controller: LambdaController, shown: float, p: float) -> tuple[float, float]:
        """(bpp, PSNR) now that the drift table maps to `shown` at the end."""
        drift = controller.drift
        if controller.goal.kind == "rate":
            end = math.exp(shown)
            return _invert(lambda now: drift.rate_at_end(now, p), end, end / 20, 20 * end), 30.0
        return 0.5, _invert(lambda now: drift.psnr_at_end(now, p), shown, shown - 20,
                            shown + 20)


def _invert(at_end, end: float, low: float, high: float) -> float:
    """The value now that ends at `end` (`at_end` grows with it), by bisection."""
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if at_end(middle) < end else (low, middle)
    return 0.5 * (low + high)


def test_the_drift_still_to_come():
    # late in a run a low rate still falls more than a high one, a PSNR rises
    # more the higher it is, and nothing moves at the end
    assert PLAIN.rate_at_end(0.2, 0.3) / 0.2 < PLAIN.rate_at_end(1.5, 0.3) / 1.5 <= 1.0
    assert PLAIN.psnr_at_end(36.0, 0.5) - 36.0 > PLAIN.psnr_at_end(28.0, 0.5) - 28.0 >= 0.0
    assert PLAIN.rate_at_end(0.5, 1.0) == 0.5 and PLAIN.psnr_at_end(33.0, 1.0) == 33.0


def test_a_coarse_started_run_still_moves_less():
    # kodim23 at quality 3.5 after a coarse start measured 0.295 bpp at 5 % of
    # its full-size run and 0.2567 bpp, 33.81 dB at 68 of its 343 steps, and
    # ended at 0.2056 bpp, 34.90 dB (bench/results/targets/drift-traces-coarse.jsonl);
    # the plain table has it end at a fifteenth of its rate
    assert COARSE.rate_at_end(0.2567, 68 / 343) == pytest.approx(0.2056, rel=0.05)
    assert COARSE.psnr_at_end(33.81, 68 / 343) == pytest.approx(34.90, abs=0.2)
    assert COARSE.rate_at_end(0.295, 0.05) == pytest.approx(0.2056, rel=0.1)
    assert PLAIN.rate_at_end(0.295, 0.05) < 0.1 * 0.295
    # at high rates a coarse-started run's rate may still rise
    assert COARSE.rate_at_end(1.5, 0.05) > 1.5


@pytest.mark.parametrize("u", [-5.0, -3.5, -2.0, -0.4, 0.0, 0.7, 1.6, 3.0, 4.0])
def test_first_guess_inverts_its_curves(u):
    # an image that ends at the anchor at the anchor's λ: the first guess for
    # where its curves put λ = e^(ANCHOR + u) is that λ, inside the fitted range
    # and on the straight lines beyond it
    anchor = Anchor(0.3, 29.0)
    lo, hi = FIRST_U_RANGE

    def along(curve: tuple[float, float], v: float) -> float:
        end = min(max(v, lo), hi)
        b, c = curve
        return b * end + c * end * end + (b + 2 * c * end) * (v - end)

    bpp = anchor.bpp * math.exp(along(FIRST_RATE, u))
    b0, b1, c = FIRST_PSNR
    psnr = anchor.psnr + along((b0 + b1 * (anchor.psnr - 30.0), c), u)
    expected = clamp_lambda(math.exp(ANCHOR_LN_LAMBDA + u))
    assert first_lambda(Goal("rate", lambda _: bpp), anchor) == pytest.approx(expected, rel=1e-6)
    assert first_lambda(Goal("psnr", lambda _: psnr), anchor) == pytest.approx(expected, rel=1e-6)


def test_first_guess_gives_a_detailed_image_more_db_per_lambda():
    # 3 dB above the anchor is a smaller step of λ for a detailed image (low
    # anchor PSNR) than for a smooth one, and a very smooth one still moves
    detailed, smooth, glassy = Anchor(0.4, 27.0), Anchor(0.1, 33.0), Anchor(0.01, 60.0)
    steps = [math.log(first_lambda(Goal("psnr", lambda _, a=a: a.psnr), a) /
                      first_lambda(Goal("psnr", lambda _, a=a: a.psnr + 3.0), a))
             for a in (detailed, smooth, glassy)]
    assert 0 < steps[0] < steps[1] < steps[2] < 3.0 / 0.9


def test_first_guess_moves_with_the_goal():
    lambdas = [first_lambda(Goal("rate", lambda _, b=b: b)) for b in (0.05, 0.2, 0.8, 3.0)]
    assert lambdas == sorted(lambdas, reverse=True)
    lambdas = [first_lambda(Goal("psnr", lambda _, d=d: d)) for d in (24.0, 30.0, 36.0, 42.0)]
    assert lambdas == sorted(lambdas, reverse=True)


@pytest.mark.parametrize("drift", [PLAIN, COARSE], ids=["plain", "coarse"])
@pytest.mark.parametrize(("scale", "strength", "unseen", "error"), [
    (0.3, 1.0, UNSEEN, 0.0), (1.0, 1.0, UNSEEN, 0.0), (3.0, 1.0, UNSEEN, 0.0),
    (1.0, 0.6, UNSEEN, 0.1), (0.3, 0.6, 0.2, -0.1), (1.0, 1.5, UNSEEN, -0.1),
    (3.0, 1.5, 0.2, 0.1), (1.0, 1.0, UNSEEN, 0.2), (0.3, 1.0, 0.1, 0.0), (0.3, 2.0, 0.2, -0.1),
    (1.0, 2.5, 0.3, 0.0)])
def test_rate_controller_ends_at_the_goal(scale, drift, strength, unseen, error):
    # ln(end bpp) = ln(scale x 0.37) - 0.66 (ln λ + 5.5) at a fixed λ; the run
    # answers the controller's moves as it expects (strength 1, UNSEEN), or
    # weaker or stronger, or shows them sooner (unseen 0.1-0.3: without the
    # damping on reversals these swing between ±MAX_MOVE), and the image's
    # error against the table fades through the run
    def start_end(lmbda: float) -> float:
        return math.log(scale * 0.37) - RATE_RESPONSE * (math.log(lmbda) + 5.5)

    goal = 0.5 * scale ** 0.5
    run = _Run(start_end, RATE_RESPONSE, strength, unseen, error)
    end = run.run(LambdaController(Goal("rate", lambda _: goal), drift=drift))
    assert math.exp(end) == pytest.approx(goal, rel=0.01)


def _psnr_at(lmbda: float) -> float:
    """A run's end PSNR at a fixed λ, for the PSNR controller's plant."""
    return 31.0 - PSNR_RESPONSE * (math.log(lmbda) + 5.5)


@pytest.mark.parametrize("drift", [PLAIN, COARSE], ids=["plain", "coarse"])
@pytest.mark.parametrize(("strength", "error"), [(1.0, 0.0), (0.6, 0.5), (1.5, -0.5)])
def test_psnr_controller_ends_at_the_goal(drift, strength, error):
    run = _Run(_psnr_at, PSNR_RESPONSE, strength, error=error)
    end = run.run(LambdaController(Goal("psnr", lambda _: 34.0), drift=drift))
    assert end == pytest.approx(34.0, abs=0.05)


def test_the_lambda_range():
    # a goal out of reach ends one quality unit past the end of the scale, never
    # further, and the header says the scale's end
    controller = LambdaController(Goal("psnr", lambda _: 90.0))
    _Run(_psnr_at, PSNR_RESPONSE).run(controller)
    assert controller.lmbda == STEERED_LAMBDA_MIN < LAMBDA_AT_MAX
    assert clamp_lambda(1.0) == STEERED_LAMBDA_MAX > LAMBDA_AT_MIN
    assert lambda_to_quality(STEERED_LAMBDA_MAX) == 1.0
    assert lambda_to_quality(STEERED_LAMBDA_MIN) == 6.0


def test_a_file_above_its_limit_is_coded_again_with_coarser_networks():
    """fit_size: the plain file when it fits (nothing coded again); else the
    first re-quantisation (λ times a factor) that fits; else the plain one."""
    request = TargetRequest(Target("size", 1000), lambda payload, streams: 0)
    tried = []

    def code(sizes):
        def at(lmbda):
            tried.append(lmbda)
            return sizes(lmbda)
        return at

    assert fit_size(request, 100, 990, code(lambda lm: 0), 1.0, lambda f: f) == 990
    assert tried == []
    # each doubling of λ takes 20 bytes off: 1030 -> 1010, 990 (fits: stops there)
    fitted = fit_size(request, 100, 1030, code(lambda lm: 1030 - 20 * math.log2(lm)), 1.0,
                      lambda f: f)
    assert fitted == 990 and tried == [2.0, 4.0]
    tried.clear()
    # none fits: the plain file comes back (then reported not met)
    fitted = fit_size(request, 100, 1300, code(lambda lm: 1300 - 20 * math.log2(lm)), 1.0,
                      lambda f: f)
    assert fitted == 1300
    assert tried == [float(f) for f in REQUANTISE_FACTORS]


def test_moves_count_the_leverage_left():
    # no drift still to come: a rate e^0.03 above the goal is a miss of 0.03 in
    # ln bpp; a move of ln λ moves the end by RATE_RESPONSE x leverage(p); an
    # update corrects `gain` of the miss (half that before EARLY)
    still = Drift((0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    moves = []
    for progress in (0.1, 0.3, 0.5, 0.66):
        controller = LambdaController(Goal("rate", lambda _: 0.4), lmbda=0.003, drift=still)
        controller.update(0.4 * math.exp(0.03), 30.0, progress)
        moves.append(math.log(controller.lmbda / 0.003) * RATE_RESPONSE * leverage(progress))
    gain = LambdaController(Goal("rate", lambda _: 0.4)).gain
    assert moves == pytest.approx([0.015 * gain, 0.03 * gain, 0.03 * gain, 0.03 * gain])
    assert leverage(0.0) == 1.0 > leverage(0.3) > leverage(0.5) > leverage(0.7) > 0.0


def test_the_trend_and_the_moves_still_to_show():
    # the second measurement 2 % higher than the first (λ unmoved: a goal met)
    # is the image's error growing: the prediction adds the trend's share of it
    still = Drift((0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    controller = LambdaController(Goal("rate", lambda _: 0.4), lmbda=0.003, drift=still)
    controller.update(0.4, 30.0, 0.3)
    assert controller.lmbda == 0.003
    controller.update(0.4 * math.exp(0.02), 30.0, 0.35)
    assert math.log(controller.predicted / 0.4) == pytest.approx(0.02 * (1 + TREND[0]))
    # a move's effect counts in the estimate before it shows: the next
    # measurement, showing (1 - UNSEEN) of it, is then no news
    moved = -RATE_RESPONSE * leverage(0.35) * math.log(controller.lmbda / 0.003)
    estimate = 0.02 + moved
    before = controller.lmbda
    controller.update(0.4 * math.exp(0.02 + (1 - UNSEEN) * moved), 30.0, 0.4)
    assert math.log(controller.predicted / 0.4) == pytest.approx(estimate)
    # the first move overshot the miss (the trend was not borne out): λ comes back
    assert controller.lmbda < before


def test_controller_holds_lambda_after_hold():
    controller = LambdaController(Goal("rate", lambda _: 0.5))
    assert not controller.due(0.0) and controller.due(0.05)
    controller.update(2.0, 30.0, 0.05)
    assert not controller.due(0.08) and controller.due(0.10)
    assert not controller.due(0.71)
    assert len(controller.history) == 1


def test_lambda_to_quality_inverts_quality_to_lambda():
    for quality in (1.0, 2.345, 3.5, 6.0):
        assert lambda_to_quality(quality_to_lambda(quality)) == pytest.approx(quality)
    assert lambda_to_quality(1.0) == 1.0 and lambda_to_quality(1e-9) == 6.0


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return random_image(40, 56, seed=21)


def test_jpeg_anchor_orders_images_by_detail():
    flat = np.full((64, 96, 3), 120, dtype=np.uint8)
    busy = random_image(64, 96, seed=4)
    assert jpeg_anchor(flat).bpp < jpeg_anchor(busy).bpp
    assert jpeg_anchor(flat).psnr > jpeg_anchor(busy).psnr


def test_moric_size_target_in_one_encode(image):
    states: list[dict] = []
    encoder = codecs.load_encoder("moric", device="cpu", steps=30, progress=states.append)
    free = encoder.encode(image, quality=3.5, regions="none")
    assert all("target" not in state for state in states)
    # a generous limit, so that the test holds on any CPU's rounding: the run
    # ends near quality 6, under it
    goal = 2 * len(free.data)
    result = encoder.encode(image, size=goal, regions="none")
    assert result.target_met and result.trials == 1
    assert states[-1]["target"].startswith(f"{goal} bytes: heading for ")
    steering = states[-1]["steering"]  # the hard-rounded evaluations that moved λ
    assert steering and all(len(update) == 4 for update in steering)
    assert [u[0] for u in steering] == sorted(u[0] for u in steering)
    assert len(result.data) <= goal
    assert target_record.read(container.read_frame(result.data).metadata) == {
        "kind": "size", "value": goal, "met": True}
    assert np.array_equal(codecs.decode(result.data), result.reconstruction)
    # the same request gives the same file
    assert encoder.encode(image, size=goal, regions="none").data == result.data


def _spy(monkeypatch, name: str) -> list:
    """What each call of the MoRIC codec's function `name` returns, in order."""
    results: list = []
    real = getattr(moric_codec, name)

    def spy(*args):
        results.append(real(*args))
        return results[-1]

    monkeypatch.setattr(moric_codec, name, spy)
    return results


def test_a_size_target_can_probe_its_parameter_bytes(image, monkeypatch):
    measured = _spy(monkeypatch, "_parameter_bytes")
    encoder = codecs.load_encoder("moric", device="cpu", steps=30)
    goal = 2 * len(encoder.encode(image, quality=3.5, regions="none").data)
    plain = encoder.encode(image, size=goal, regions="none")
    assert measured == []  # not by default
    with preset_overridden("medium", {"probe_parameters": True}):
        probed = encoder.encode(image, size=goal, regions="none")
    assert len(measured) == 1  # once, before the last update
    frame = container.read_frame(probed.data)
    final = len(container.split_streams(probed.data, frame)[0])
    # the stream as it would be then: the last update may still move λ (and so
    # the networks' quantisation step) by up to MAX_MOVE
    assert 0.5 * final <= measured[0] <= 1.5 * final
    # the probe searches a copy: with its measure ignored, the file is the plain one
    estimate = ParameterBytes.at
    monkeypatch.setattr(ParameterBytes, "at", lambda self, lmbda: estimate(ParameterBytes(), lmbda))
    with preset_overridden("medium", {"probe_parameters": True}):
        assert encoder.encode(image, size=goal, regions="none").data == plain.data
    assert len(measured) == 2


def test_the_recipe_sets_the_controllers_gain(image, monkeypatch):
    made = _spy(monkeypatch, "controller_for")
    encoder = codecs.load_encoder("moric", device="cpu", steps=4)
    with preset_overridden("medium", {"target_gain": 0.8}):
        encoder.encode(image, psnr=20.0, regions="none", best_effort=True)
    assert [c.gain for c in made] == [0.8]


def test_parameter_bytes_follow_a_measure():
    guess = ParameterBytes()
    assert guess.at(quality_to_lambda(1.0)) == pytest.approx(PARAMETER_BYTES[0])
    probed = ParameterBytes(measured=(3.0, 1500))
    assert probed.at(quality_to_lambda(3.0)) == pytest.approx(1500)
    assert probed.at(quality_to_lambda(4.0)) == pytest.approx(1500 + PARAMETER_BYTES[1])


def test_moric_targets_out_of_reach(image):
    encoder = codecs.load_encoder("moric", device="cpu", steps=20)
    with pytest.raises(TargetNotMet, match="cannot meet 60 dB PSNR: the highest PSNR reached"):
        encoder.encode(image, psnr=60, regions="none")
    with pytest.raises(TargetNotMet, match="cannot meet 10 bytes: the smallest file"):
        encoder.encode(image, size=10, regions="none")
    result = encoder.encode(image, psnr=60, regions="none", best_effort=True)
    assert not result.target_met and result.quality == 6.0
    assert result.psnr == pytest.approx(psnr_rgb(image, codecs.decode(result.data)))
    assert any("best effort" in note for note in result.notes)


def test_cli_moric_bpp_target(image, tmp_path):
    png, out = tmp_path / "in.png", tmp_path / "a.spic"
    Image.fromarray(image).save(png)
    r = CliRunner().invoke(main, ["encode", str(png), str(out), "--codec", "moric",
                                  "--steps", "20", "--regions", "none", "--bpp", "12"])
    assert r.exit_code == 0, r.output
    assert "target 12 bpp met" in r.output and "1 trial encodes" in r.output
    assert 8 * out.stat().st_size <= 12 * 40 * 56
    info = json.loads(CliRunner().invoke(main, ["info", str(out), "--json"]).stdout)
    assert info["target"] == {"kind": "bpp", "value": 12.0, "met": True}
    r = CliRunner().invoke(main, ["encode", str(png), str(tmp_path / "b.spic"), "--codec",
                                  "moric", "--steps", "20", "--size", "10"])
    assert r.exit_code == 2 and "cannot meet 10 bytes" in r.stderr
    assert not (tmp_path / "b.spic").exists()


def test_pillow_save_moric_psnr_target(image):
    import io

    import segpic_codec.pillow  # noqa: F401 - registers the format

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="SPIC", codec="moric", steps=20, regions="none",
                                psnr=12.0, device="cpu")
    frame = container.read_frame(buf.getvalue())
    assert target_record.read(frame.metadata) == {"kind": "psnr", "value": 12.0, "met": True}
    assert psnr_rgb(image, codecs.decode(buf.getvalue())) >= 12.0 - 0.15
    with pytest.raises(ValueError, match="cannot meet 60 dB PSNR"):
        Image.fromarray(image).save(io.BytesIO(), format="SPIC", codec="moric", steps=20,
                                    regions="none", psnr=60.0, device="cpu")


def test_the_targets_table_reads_each_file_against_the_fixed_lambda_curve(tmp_path):
    """`scripts/moric_targets.py table`: a steered file 10 % above a fixed-λ
    curve (ln bpp a cubic in PSNR, so the fit is exact) costs +10.0 %, and so
    does the image's BD-rate; a file outside the curve's PSNR range is not
    extrapolated."""
    import subprocess
    import sys

    from conftest import REPO

    def curve_bpp(psnr: float) -> float:
        u = psnr - 30.0
        return 0.3 * math.exp(0.25 * u + 0.002 * u**3)

    points = [{"image": "im", "bpp": curve_bpp(p), "psnr": p} for p in (25.0, 28.0, 31.0, 35.0)]
    steered = []
    for kind, goal, psnr in (("bpp", 0.25, 26.0), ("bpp", 0.5, 29.5), ("psnr", 30.0, 30.0),
                             ("psnr", 33.0, 33.0), ("psnr", 36.0, 36.5)):
        bpp = 1.1 * curve_bpp(psnr)
        steered.append({"image": "im", "kind": kind, "goal": goal, "psnr": psnr, "bpp": bpp,
                        "file_bytes": round(bpp * 768 * 512 / 8), "quality": 3.0,
                        "met": True, "encode_s": 1.0})
    (tmp_path / "steered.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steered))
    (tmp_path / "points.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "moric_targets.py"), "table",
                          str(tmp_path / "steered.jsonl"), "--reference",
                          str(tmp_path / "points.jsonl")],
                         capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| im |")][:5]
    assert [row.split("|")[-2].strip() for row in rows] == ["+10.0 %"] * 4 + ["outside"]
    assert "+10.0 % on average over 4 files" in out
    assert "| im | 5 | +10.00 % |" in out  # the steered files above 35 dB leave the fit alone


def test_the_targets_table_reads_a_size_row_against_its_own_limit(tmp_path):
    """A size row of another photo than Kodak records the byte limit it was
    given; the table reads its landing against that limit, not against a
    768 x 512 image's bytes at the same bpp (rows without one are Kodak's)."""
    import subprocess
    import sys

    from conftest import REPO

    rows = [{"image": "photo", "kind": "bpp", "goal": 0.5, "limit": 19200, "file_bytes": 18912,
             "pixels": 640 * 480, "bpp": 0.4925, "psnr": 31.0, "quality": 3.0, "met": True,
             "encode_s": 1.0},
            {"image": "kodim05", "kind": "bpp", "goal": 0.5, "file_bytes": 24600, "bpp": 0.5004,
             "psnr": 29.0, "quality": 3.0, "met": False, "encode_s": 1.0}]
    (tmp_path / "steered.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "moric_targets.py"), "table",
                          str(tmp_path / "steered.jsonl")],
                         capture_output=True, text=True, check=True).stdout
    assert "| 98.5 % of 19200 B |" in out
    assert "| 100.1 % of 24576 B |" in out
    assert "size within 3 % below the target: 1/2; above it: 1/2" in out

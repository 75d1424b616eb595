"""MoRIC round trips, exactness of the entropy path, hostile input, arguments."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from segpic_codec.errors import SegpicError
from segpic_codec.moric import codec, layout

REPO = Path(__file__).resolve().parent.parent


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient plus noise: structure for the latents, texture for the ARM."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 / max(width, 1), y * 200 / max(height, 1),
                     (x + y) * 100 / max(width + height, 1)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def encoded() -> dict[tuple[int, int], tuple[np.ndarray, codec.MoricEncoded]]:
    out = {}
    for (h, w), regions in [((1, 1), "auto"), ((5, 7), "none"), ((20, 33), "auto")]:
        pixels = _image(h, w)
        out[(h, w)] = (pixels, codec.encode(pixels, quality=5.0, steps=12, seed=1,
                                            regions=regions))
    return out


@pytest.mark.parametrize("size, regions", [((1, 1), 1), ((5, 7), 1), ((20, 33), 3)])
def test_round_trip_matches_reconstruction(encoded, size, regions):
    pixels, enc = encoded[size]
    h, w = size
    assert enc.steps == 12 and not enc.interrupted
    assert enc.reconstruction.shape == (h, w, 3) and enc.reconstruction.dtype == np.uint8
    assert enc.regions == regions and enc.labels.shape == (h, w)
    names = layout.stream_names(enc.payload, len(enc.streams))
    # one region: version 1 (no contour stream); several: version 2
    assert layout.describe(enc.payload)["format_version"] == (1 if regions == 1 else 2)
    assert names[:2] == (["parameters", "latents 1/1"] if regions == 1
                         else ["parameters", "contours"])
    assert len(enc.streams) == 8 + (regions > 1)
    decoded = codec.decode(enc.payload, enc.streams, w, h)
    np.testing.assert_array_equal(decoded, enc.reconstruction)
    info = layout.describe(enc.payload)
    assert info["quality"] == 5.0 and info["steps"] == 12 and info["preset"] == "medium"
    assert info["regions"] == regions


def test_decode_is_thread_independent(tmp_path, torch_threads):
    """An image large enough to be encoded on two threads: a fresh process with
    one thread everywhere decodes exactly the encoder's reconstruction."""
    torch_threads(2)
    enc = codec.encode(_image(256, 300, seed=5), quality=3.0, steps=3)
    data = tmp_path / "moric.npz"
    np.savez(data, payload=np.frombuffer(enc.payload, np.uint8),
             **{f"s{i}": np.frombuffer(s, np.uint8) for i, s in enumerate(enc.streams)})
    script = (
        "import sys, hashlib, numpy as np, torch; torch.set_num_threads(1);"
        "from segpic_codec.moric import codec;"
        f"d = np.load({str(data)!r});"
        f"streams = [d[f's{{i}}'].tobytes() for i in range({len(enc.streams)})];"
        "img = codec.decode(d['payload'].tobytes(), streams, 300, 256);"
        "print(hashlib.sha256(img.tobytes()).hexdigest())"
    )
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=120, check=True)
    assert result.stdout.strip() == hashlib.sha256(enc.reconstruction.tobytes()).hexdigest()


def test_should_stop_gives_a_valid_file():
    pixels = _image(9, 14, seed=3)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    reports = []
    enc = codec.encode(pixels, quality=2.0, steps=1000, should_stop=stop,
                       progress=reports.append)
    assert enc.interrupted and enc.steps == 5
    assert layout.describe(enc.payload)["interrupted"] is True
    np.testing.assert_array_equal(codec.decode(enc.payload, enc.streams, 14, 9),
                                  enc.reconstruction)


def test_progress_reports():
    reports = []
    codec.encode(_image(6, 6), quality=1.0, steps=20, progress=reports.append)
    assert reports and {"step", "total", "bpp", "psnr", "elapsed", "eta"} <= set(reports[0])
    assert reports[-1]["step"] == 20 and reports[-1]["total"] == 20


def test_time_limit_stops():
    """A time limit alone ends the optimisation: bounded in CPU time, which a busy
    machine does not use up (its wall clock runs the limit down sooner)."""
    start = time.process_time()
    enc = codec.encode(_image(8, 8), quality=3.0, time_limit=0.5)
    assert enc.steps >= 1 and time.process_time() - start < 30


@pytest.mark.parametrize("kwargs", [
    {"quality": 0.5}, {"quality": 6.5}, {"steps": 0}, {"steps": -3}, {"time_limit": 0},
    {"time_limit": -1.0}, {"preset": "ludicrous"}, {"device": "tpu"},
])
def test_argument_errors(kwargs):
    with pytest.raises(SegpicError) as err:
        codec.encode(_image(4, 4), **kwargs)
    assert isinstance(err.value, ValueError)
    assert "\n" not in str(err.value)


def test_bad_pixels():
    with pytest.raises(SegpicError):
        codec.encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(SegpicError):
        codec.encode(np.zeros((4, 4, 3), np.float32))


def _expect_format_error(payload, streams, width=33, height=20):
    with pytest.raises(SegpicError) as err:
        codec.decode(payload, streams, width, height)
    assert "\n" not in str(err.value)


def test_corrupt_payloads(encoded):
    _, enc = encoded[(20, 33)]
    _expect_format_error(b"", enc.streams)
    _expect_format_error(enc.payload[:-1], enc.streams)
    _expect_format_error(bytes([99]) + enc.payload[1:], enc.streams)
    _expect_format_error(enc.payload, enc.streams[:-1])
    _expect_format_error(enc.payload, enc.streams, width=0)
    _expect_format_error(enc.payload, enc.streams, width=1 << 20, height=1 << 20)
    bad_range = bytearray(enc.payload)
    bad_range[12:16] = (1000).to_bytes(2, "big", signed=True) + (5).to_bytes(2, "big")
    _expect_format_error(bytes(bad_range), enc.streams)
    with pytest.raises(SegpicError):
        layout.describe(b"\x01garbage")
    with pytest.raises(SegpicError):
        layout.stream_names(enc.payload, 3)


def test_corrupt_streams_never_crash(encoded):
    """Truncated or damaged streams raise a SegpicError or decode to some image;
    nothing else (no hang, no other exception type)."""
    _, enc = encoded[(20, 33)]
    rng = np.random.default_rng(7)
    _expect_format_error(enc.payload, [enc.streams[0][:-3]] + enc.streams[1:])
    _expect_format_error(enc.payload, enc.streams[:1] + [enc.streams[1][:-1]] + enc.streams[2:])
    _expect_format_error(enc.payload, enc.streams[:1] + [enc.streams[1] + b"\xff" * 8]
                         + enc.streams[2:])
    # oversized streams are refused before parsing
    _expect_format_error(enc.payload, [b"\x00" * 100_000] + enc.streams[1:])
    _expect_format_error(enc.payload, enc.streams[:1] + [b"\x00" * 4096] + enc.streams[2:])
    for _ in range(12):
        streams = list(enc.streams)
        i = int(rng.integers(0, len(streams)))
        data = bytearray(streams[i] or b"\x00\x00\x00\x00")
        for _ in range(3):
            data[int(rng.integers(0, len(data)))] ^= int(rng.integers(1, 256))
        streams[i] = bytes(data)
        try:
            out = codec.decode(enc.payload, streams, 33, 20)
        except SegpicError as exc:
            assert "\n" not in str(exc)
        else:
            assert out.shape == (20, 33, 3) and out.dtype == np.uint8


def test_layout_does_not_import_torch():
    script = ("import sys; import segpic_codec.moric.layout as l;"
              "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_size_limit_is_segpics(encoded, monkeypatch):
    """MoRIC's encode and decode refuse what `limits.py` refuses, before any work:
    here SEGPIC_MAX_PIXELS lowered below the 33x20 test image."""
    _, enc = encoded[(20, 33)]
    monkeypatch.setenv("SEGPIC_MAX_PIXELS", str(33 * 20 - 1))
    with pytest.raises(SegpicError, match="cannot encode a 33x20 image"):
        codec.encode(_image(20, 33), steps=1)
    _expect_format_error(enc.payload, enc.streams)
    monkeypatch.setenv("SEGPIC_MAX_PIXELS", str(33 * 20))
    assert codec.decode(enc.payload, enc.streams, 33, 20).shape == (20, 33, 3)

"""MoRIC through the command line: encode/decode/info/batch with a few steps, the
flags that do not apply, and a clean stop on Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, random_image, sigint_as_in_a_terminal
from PIL import Image

from segpic_codec import codecs
from segpic_codec.cli import main

ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(random_image(21, 34, seed=5)).save(path)
    return path


def test_encode_decode_info(png, tmp_path):
    spic, out = tmp_path / "a.spic", tmp_path / "out.png"
    r = run("encode", png, spic, "--codec", "moric", "--steps", "4", "-q", "3",
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "bpp" in r.stdout
    r = run("decode", spic, out)
    assert r.exit_code == 0, r.output
    decoded = np.asarray(Image.open(out))
    assert decoded.shape == (21, 34, 3)
    assert np.array_equal(decoded, codecs.decode(spic.read_bytes()))
    info = json.loads(run("info", spic, "--json").stdout)
    assert info["codec"] == "moric" and (info["width"], info["height"]) == (34, 21)
    assert sum(s["bytes"] for s in info["streams"]) <= info["bytes"]
    assert run("info", spic).exit_code == 0


def test_unreachable_bpp_and_options_that_do_not_apply(png, tmp_path):
    # 0.5 bpp of a 34x21 image is 44 bytes: less than any MoRIC file
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", "--steps", "3",
            "--bpp", "0.5")
    assert r.exit_code == 2 and "cannot meet 0.5 bpp: the smallest file reached" in r.output
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", "--weights", tmp_path)
    assert r.exit_code == 2 and "--weights does not apply" in r.output
    r = run("encode", png, tmp_path / "a.spic", "--codec", "moric", "--preset", "nope")
    assert r.exit_code == 2 and "preset" in r.output
    assert not (tmp_path / "a.spic").exists()


def test_batch_with_a_broken_image(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(2):
        Image.fromarray(random_image(9, 13, seed=i)).save(src / f"ok{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run("batch", src, dst, "--codec", "moric", "--steps", "3", "--device", "cpu")
    assert r.exit_code == 1
    assert "2 done" in r.output and "1 failed" in r.output
    assert sorted(p.name for p in dst.iterdir()) == ["ok0.spic", "ok1.spic"]
    r = run("batch", dst, tmp_path / "back", "--decode")
    assert r.exit_code == 0, r.output


# the progress bar once the optimisation runs: a step done, its rate measured
PROGRESS = re.compile(r"step [1-9]\d*/\d+ [0-9.]+ bpp")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _collect(stream, chunks: list[str]) -> None:
    """Read a pipe as it comes (a progress bar redraws its line: no newlines)."""
    for chunk in iter(lambda: stream.read1(4096), b""):
        chunks.append(chunk.decode("utf-8", "replace"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signals", [1, 2])
def test_interrupt_writes_the_best_state_or_nothing(tmp_path, signals):
    """One SIGTERM: the optimisation stops and a valid file is written (and said
    so); a second one aborts. Either way no partial file is ever left. The signal
    is sent once the progress bar shows a finished step (FORCE_COLOR makes rich
    draw it into the pipe): the handler is in place and there is a state to write."""
    src, spic = tmp_path / "in.png", tmp_path / "a.spic"
    Image.fromarray(random_image(24, 24, seed=9)).save(src)
    proc = subprocess.Popen([sys.executable, "-m", "segpic_codec", "encode", str(src),
                             str(spic), "--codec", "moric", "--steps", "1000000",
                             "--device", "cpu"], env={**ENV, "FORCE_COLOR": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=sigint_as_in_a_terminal)
    chunks: list[str] = []
    reader = threading.Thread(target=_collect, args=(proc.stderr, chunks), daemon=True)
    reader.start()
    try:
        # a bound for a hung process only: readiness is the progress, not a time
        deadline = time.monotonic() + 600
        while not PROGRESS.search(ANSI.sub("", "".join(chunks))):
            assert proc.poll() is None, "".join(chunks)
            assert time.monotonic() < deadline, "no progress shown"
            time.sleep(0.05)
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=60)
    err = ANSI.sub("", "".join(chunks))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("in.png", "a.spic")]
    assert leftovers == []
    if proc.returncode == 0:
        assert "stopped early" in err
        assert codecs.decode(spic.read_bytes()).shape == (24, 24, 3)
    else:
        assert signals == 2 and proc.returncode == 130, (proc.returncode, err)
        assert "interrupted" in err and not spic.exists()
    if signals == 1:
        assert proc.returncode == 0, err


@pytest.fixture()
def labels_png(tmp_path):
    """A label image for `png`: a rectangle (1) with a hole (2) on a background (0)."""
    labels = np.zeros((21, 34), np.uint8)
    labels[3:18, 5:28] = 1
    labels[8:12, 12:18] = 2
    path = tmp_path / "labels.png"
    Image.fromarray(labels).save(path)
    return path, labels


def test_regions_from_a_label_image_and_layered_decode(png, labels_png, tmp_path):
    path, labels = labels_png
    spic = tmp_path / "a.spic"
    r = run("encode", png, spic, "--codec", "moric", "--steps", "3", "--regions", path)
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", spic, "--json").stdout)
    assert info["regions"] == 3 and "contours" in [s["name"] for s in info["streams"]]
    full = codecs.decode(spic.read_bytes())
    r = run("decode", spic, tmp_path / "layer.png", "--region", "2,0")
    assert r.exit_code == 0, r.output
    layer = np.asarray(Image.open(tmp_path / "layer.png"))
    assert layer.shape == (21, 34, 4)
    drawn = np.isin(labels, [0, 2])  # contours of a rectangle are coded exactly
    assert np.array_equal(layer[..., 3], drawn * 255)
    assert np.array_equal(layer[drawn][:, :3], full[drawn])
    for bad, message in (("3", "region(s) 0..2"), ("x", "not a list"), ("-1", "start at 0")):
        r = run("decode", spic, tmp_path / "bad.png", "--region", bad)
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / "bad.png").exists()


def test_region_flags(png, tmp_path):
    spic = tmp_path / "a.spic"
    r = run("encode", png, spic, "--codec", "moric", "--steps", "2", "--region-count", "2")
    assert r.exit_code == 0, r.output
    assert json.loads(run("info", spic, "--json").stdout)["regions"] == 2
    r = run("encode", png, tmp_path / "b.spic", "--codec", "moric", "--steps", "2",
            "--regions", "none")
    assert r.exit_code == 0, r.output
    assert json.loads(run("info", tmp_path / "b.spic", "--json").stdout)["regions"] == 1
    # a segpic file has no regions; flags of moric do not apply to segpic
    r = run("encode", png, tmp_path / "c.spic", "--regions", "none")
    assert r.exit_code == 2 and "--regions does not apply" in r.output
    r = run("encode", png, tmp_path / "c.spic", "--codec", "moric", "--regions", "none",
            "--region-count", "3")
    assert r.exit_code == 2 and "--region-count applies to --regions auto" in r.output
    r = run("encode", png, tmp_path / "c.spic", "--codec", "moric", "--regions", "none",
            "--contours", "lossy")
    assert r.exit_code == 2 and "--contours applies to files with regions" in r.output
    r = run("encode", png, tmp_path / "c.spic", "--codec", "moric", "--contours", "exact")
    assert r.exit_code == 2 and "'exact' is not one of" in r.output
    assert not (tmp_path / "c.spic").exists()


def test_contour_modes(tmp_path):
    """--contours lossless keeps a disc's outline exactly; lossy codes a C* polygon."""
    y, x = np.mgrid[:48, :64]
    disc = ((y - 24) ** 2 + (x - 30) ** 2 < 18 ** 2).astype(np.uint8)
    Image.fromarray(disc).save(tmp_path / "disc.png")
    Image.fromarray(random_image(48, 64, seed=2)).save(tmp_path / "in.png")
    outlines, sizes = {}, {}
    for mode in ("lossless", "lossy"):
        spic = tmp_path / f"{mode}.spic"
        r = run("encode", tmp_path / "in.png", spic, "--codec", "moric", "--steps", "2",
                "--regions", tmp_path / "disc.png", "--contours", mode)
        assert r.exit_code == 0, r.output
        info = json.loads(run("info", spic, "--json").stdout)
        sizes[mode] = {s["name"]: s["bytes"] for s in info["streams"]}["contours"]
        assert run("decode", spic, tmp_path / f"{mode}.png", "--region", "1").exit_code == 0
        outlines[mode] = np.asarray(Image.open(tmp_path / f"{mode}.png"))[..., 3] > 0
    assert np.array_equal(outlines["lossless"], disc > 0)
    assert not np.array_equal(outlines["lossy"], disc > 0)
    assert sizes["lossy"] < sizes["lossless"]


@pytest.mark.parametrize("make, message", [
    (lambda p: Image.fromarray(np.zeros((20, 34), np.uint8)).save(p), "the image is 34x21"),
    (lambda p: Image.fromarray((np.arange(21 * 34) % 40).astype(np.uint8).reshape(21, 34)
                               ).save(p), "at most 16"),
    (lambda p: p.write_bytes(b"not a png"), "cannot read label image"),
    (lambda p: None, "cannot read label image"),
])
def test_bad_label_images(png, tmp_path, make, message):
    path = tmp_path / "labels.png"
    make(path)
    out = tmp_path / "a.spic"
    r = run("encode", png, out, "--codec", "moric", "--steps", "2", "--regions", path)
    assert r.exit_code != 0 and message in r.output, r.output
    assert "Traceback" not in r.output and not out.exists()


def test_layered_decode_of_a_segpic_file(png, tmp_path):
    spic = tmp_path / "s.spic"
    assert run("encode", png, spic).exit_code == 0
    r = run("decode", spic, tmp_path / "o.png", "--region", "0")
    assert r.exit_code != 0 and "--region applies to moric files" in r.output


def test_single_object_coding(png, tmp_path):
    mask = np.zeros((21, 34), np.uint8)
    mask[4:16, 8:25] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    spic, out = tmp_path / "o.spic", tmp_path / "o.png"
    r = run("encode", png, spic, "--codec", "moric", "--steps", "3", "--roi",
            tmp_path / "mask.png")
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", spic, "--json").stdout)
    assert info["object_only"] is True and info["regions"] == 2
    background, obj = json.loads(run("info", spic, "--json", "--latents").stdout)["region_table"]
    assert background["latent_bits"] == 0
    assert obj["latent_bits"] > 0
    assert run("decode", spic, out).exit_code == 0
    decoded = np.asarray(Image.open(out))
    assert decoded.shape == (21, 34, 4)
    assert np.array_equal(decoded[..., 3], (mask > 0) * 255)
    r = run("decode", spic, tmp_path / "bg.png", "--region", "0")
    assert r.exit_code == 2 and "region(s) 1..1" in r.output
    r = run("encode", png, tmp_path / "x.spic", "--codec", "moric", "--roi",
            tmp_path / "mask.png", "--regions", "none")
    assert r.exit_code == 2 and "--roi codes one object" in r.output
    Image.fromarray(np.zeros((21, 34), np.uint8)).save(tmp_path / "empty.png")
    r = run("encode", png, tmp_path / "x.spic", "--codec", "moric", "--roi",
            tmp_path / "empty.png")
    assert r.exit_code == 2 and "empty" in r.output
    assert not (tmp_path / "x.spic").exists()


def test_info_per_region(png, labels_png, tmp_path):
    """info's region table: pixels, contour chains and bits, LSN and latent bits;
    no torch."""
    path, labels = labels_png
    spic = tmp_path / "a.spic"
    assert run("encode", png, spic, "--codec", "moric", "--steps", "2", "--regions",
               path).exit_code == 0
    info = json.loads(run("info", spic, "--json").stdout)
    table = info["region_table"]
    assert [r["pixels"] for r in table] == np.bincount(labels.ravel()).tolist()
    assert table[0]["contour_chains"] == 0  # the base label: no chain of its own
    assert table[1]["contour_chains"] == 1 and table[2]["contour_chains"] == 1
    streams = {s["name"]: s["bytes"] for s in info["streams"]}
    contour_bits = sum(r["contour_bits"] for r in table)
    assert 0 < contour_bits <= 8 * streams["contours"]
    assert all(r["lsn_bits"] > 0 for r in table)
    assert sum(r["lsn_bits"] for r in table) < 8 * streams["parameters"]
    # the latents' information, split among the regions, is what their streams
    # hold, up to the range coders' termination (at most 64 bits per grid) and
    # the coder's quantised probabilities
    assert "latent_bits" not in table[0]  # only with --latents (it decodes the latents)
    table = json.loads(run("info", spic, "--json", "--latents").stdout)["region_table"]
    latent_stream_bits = 8 * sum(b for name, b in streams.items() if name.startswith("latents"))
    latent_bits = sum(r["latent_bits"] for r in table)
    assert all(r["latent_bits"] > 0 for r in table)
    assert abs(latent_stream_bits - latent_bits) <= 7 * 64 + 0.02 * latent_stream_bits
    code = ("import sys\nfrom segpic_codec.cli import main\n"
            f"sys.argv = ['segpic', 'info', '--latents', {str(spic)!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'info imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**ENV, "COLUMNS": "200"})  # no wrapped headers
    assert done.returncode == 0, done.stderr
    assert "LSN bytes" in done.stdout and "latent bytes" in done.stdout

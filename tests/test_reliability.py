"""Reliability: one error type, decoding independent of thread count and torch's
deterministic mode, batch runs that survive Ctrl-C / SIGTERM / SIGKILL and a full
disk, and hostile or odd input images."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, random_image, sigint_as_in_a_terminal
from PIL import Image

from segpic_codec import image_io
from segpic_codec.cli import main
from segpic_codec.container import ContainerError
from segpic_codec.entropy.range_coding import StreamError
from segpic_codec.errors import CodecError, SegpicError
from segpic_codec.image_io import ImageError, load_image
from segpic_codec.limits import DEFAULT_MAX_PIXELS
from segpic_codec.segpic import layout
from segpic_codec.segpic.codec import Codec

ENV = dict(os.environ, PYTHONPATH=str(REPO))
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(*args, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("segpic: error:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def _part_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def test_one_error_type():
    for cls in (ContainerError, CodecError, StreamError, ImageError):
        assert issubclass(cls, SegpicError)
        assert issubclass(cls, ValueError)  # what they were before: old handlers still work


def test_decoder_failures_become_codec_errors(tiny_codec, monkeypatch):
    """Whatever torch / numpy / constriction raise inside the model on a file that
    passed the container checks reaches the caller as a CodecError; running out of
    memory stays a MemoryError (the machine's problem, not the file's)."""
    data = tiny_codec.encode(random_image(20, 20), quality=2, reconstruct=False).data
    for exc in (RuntimeError("shape mismatch"), IndexError("index 7"), ValueError("nan")):
        def fail(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(tiny_codec.model, "decompress", fail)
        with pytest.raises(CodecError, match="cannot decode"):
            tiny_codec.decode(data)

    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tiny_codec.model, "decompress", oom)
    with pytest.raises(MemoryError):
        tiny_codec.decode(data)


# ------------------------------------------------------ threads, determinism
_WORKER = """
import sys, json, numpy as np, torch
threads, deterministic, weights, out_dir, in_dir = sys.argv[1:6]
torch.set_num_threads(int(threads))
torch.use_deterministic_algorithms(deterministic == "1")
from segpic_codec.segpic.codec import Codec
sys.path.insert(0, {tests!r})
from conftest import random_image
codec = Codec.load(weights, device="cpu")
cases = json.loads(sys.argv[6])
for name, (h, w, q, grid) in cases.items():
    r = codec.encode(random_image(h, w, seed=h * w), quality=q, grid=grid)
    open(f"{{out_dir}}/{{name}}.spic", "wb").write(r.data)
    np.save(f"{{out_dir}}/{{name}}.recon.npy", r.reconstruction)
if in_dir != "-":
    for name in cases:
        data = open(f"{{in_dir}}/{{name}}.spic", "rb").read()
        np.save(f"{{out_dir}}/{{name}}.decoded.npy", codec.decode(data))
""".format(tests=str(REPO / "tests"))

_CASES = {"a": (70, 100, 1, 4), "b": (64, 64, 3.5, 8), "c": (33, 150, 6, 1)}


def _worker(tiny_weights, threads: int, deterministic: bool, out_dir: Path,
            in_dir: Path | None, exact: bool) -> None:
    out_dir.mkdir()
    env = dict(ENV, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               SEGPIC_EXACT="1" if exact else "0")
    subprocess.run([sys.executable, "-c", _WORKER, str(threads), "1" if deterministic else "0",
                    str(tiny_weights), str(out_dir), str(in_dir or "-"), json.dumps(_CASES)],
                   check=True, env=env, timeout=600)


def _agree(decoded: np.ndarray, reconstruction: np.ndarray, exact: bool) -> bool:
    """Bit for bit with the float64 synthesis; within one level with the float32 one
    (the entropy path is float64 in both, so the file always parses the same)."""
    if exact:
        return np.array_equal(decoded, reconstruction)
    diff = np.abs(decoded.astype(np.int16) - reconstruction.astype(np.int16))
    return decoded.shape == reconstruction.shape and int(diff.max()) <= 1


@pytest.mark.parametrize("exact", [True, False], ids=["float64", "float32"])
def test_decode_independent_of_threads_and_deterministic_mode(tiny_weights, tmp_path, exact):
    """Files encoded with 1 thread and deterministic algorithms decode to the
    encoder's reconstruction with 3 threads and them off, and the other way round;
    this process (default threads) agrees with both, in both modes. Bit for bit with
    the exact (float64) synthesis, within one level with the default float32 one."""
    import torch

    codec = Codec.load(tiny_weights, device="cpu", exact=exact)
    one, three = tmp_path / "t1-det", tmp_path / "t3-nondet"
    _worker(tiny_weights, 1, True, one, None, exact)
    _worker(tiny_weights, 3, False, three, one, exact)  # also decodes the 1-thread files
    for name in _CASES:
        assert _agree(np.load(three / f"{name}.decoded.npy"),
                      np.load(one / f"{name}.recon.npy"), exact), name
    back = tmp_path / "t1-det-back"
    _worker(tiny_weights, 1, True, back, three, exact)  # decodes the 3-thread files
    for name in _CASES:
        assert _agree(np.load(back / f"{name}.decoded.npy"),
                      np.load(three / f"{name}.recon.npy"), exact), name
    for deterministic in (True, False):
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(deterministic)
        try:
            for folder in (one, three):
                for name in _CASES:
                    decoded = codec.decode((folder / f"{name}.spic").read_bytes())
                    assert _agree(decoded, np.load(folder / f"{name}.recon.npy"), exact)
        finally:
            torch.use_deterministic_algorithms(before)


def test_cross_device_script(tiny_weights, tmp_path, capsys, monkeypatch):
    """scripts/cross_device.py runs (its CPU fallback here; CUDA <-> CPU where a GPU
    is present) and counts its round trips."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("cross_device",
                                                  REPO / "scripts" / "cross_device.py")
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "cross_device", script)  # dataclasses look it up
    spec.loader.exec_module(script)
    images = tmp_path / "images"
    images.mkdir()
    _png(images / "a.png", random_image(50, 70, seed=1))
    _png(images / "b.png", random_image(64, 20, seed=2))
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        code = script.main(["--kodak", str(images), "--weights", str(tiny_weights),
                            "--qualities", "1", "6", "--cpu-fallback", "--threads", "1", "3",
                            "--json", str(tmp_path / "trips.json")])
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "8 / 8 round trips passed" in out
    trips = json.loads((tmp_path / "trips.json").read_text())["trips"]
    assert len(trips) == 8 and all(t["ok"] for t in trips)
    if not torch.cuda.is_available():
        assert script.main(["--kodak", str(images), "--weights", str(tiny_weights)]) == 2


# ------------------------------------------------------------ batch signals
BATCH_SIZE = 24  # images per interrupted batch: enough to stop it half-way


def _image_folder(src: Path, count: int = BATCH_SIZE) -> Path:
    src.mkdir()
    for i in range(count):
        _png(src / f"img{i:03d}.png", random_image(64, 96, seed=i))
    return src


def _outputs(dst: Path) -> list[Path]:
    return sorted(p for p in dst.rglob("*.spic") if not p.name.startswith("."))


def _start_batch(src: Path, dst: Path, weights: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "segpic_codec", "batch", str(src), str(dst), "--weights",
         str(weights), "--device", "cpu", "-q", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        preexec_fn=sigint_as_in_a_terminal)


def _wait_for_outputs(proc: subprocess.Popen, dst: Path, count: int) -> None:
    deadline = time.monotonic() + 300
    while not dst.is_dir() or len(_outputs(dst)) < count:
        if proc.poll() is not None:
            pytest.fail(f"batch ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("batch produced no output in time")
        time.sleep(0.02)


def _assert_complete(files: list[Path]) -> None:
    for path in files:  # the CRC covers every byte: a partial file cannot pass
        layout.read_header(path.read_bytes())


POSIX_SIGNALS = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@POSIX_SIGNALS
@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
def test_batch_interrupted_then_resumed(tiny_weights, tmp_path, sig, code, word):
    src, dst = _image_folder(tmp_path / "src"), tmp_path / "dst"
    (src / "aaa-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # fails first
    proc = _start_batch(src, dst, tiny_weights)
    _wait_for_outputs(proc, dst, 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err
    finished = _outputs(dst)
    assert 2 <= len(finished) < BATCH_SIZE
    # the summary: counts, why it stopped, and the failures so far
    assert (f"{len(finished)} done, 0 skipped (already done), 1 failed, "
            f"{BATCH_SIZE - len(finished)} not done ({word}; rerun to finish them)") in out, out
    assert "failed: " in out and "aaa-broken.png" in out
    assert not _part_files(dst)
    _assert_complete(finished)
    r = run("batch", src, dst, "--weights", tiny_weights, "-q", "2")
    assert r.exit_code == 1, r.output  # the broken file is retried, and fails again
    assert (f"{BATCH_SIZE - len(finished)} done, {len(finished)} skipped (already done), "
            "1 failed") in r.stdout
    assert len(_outputs(dst)) == BATCH_SIZE and not _part_files(dst)
    _assert_complete(_outputs(dst))


@POSIX_SIGNALS
def test_batch_killed_then_resumed(tiny_weights, tmp_path):
    src, dst = _image_folder(tmp_path / "src"), tmp_path / "dst"
    proc = _start_batch(src, dst, tiny_weights)
    _wait_for_outputs(proc, dst, 3)
    proc.kill()  # SIGKILL: no handler runs, a temp file may be left
    proc.communicate(timeout=60)
    finished = _outputs(dst)
    _assert_complete(finished)  # what has its final name is complete
    # leftovers as a killed run leaves them (its pid is now dead), one of a live
    # process (pid 1) and files that only look similar: only the first must go
    stale = dst / f".img023.spic.{proc.pid}.ab_cd123.part"
    stale.write_bytes(b"partial")
    live = dst / ".img022.spic.1.zz9zz9zz.part"
    live.write_bytes(b"someone else's write in progress")
    others = [dst / ".notes.part", dst / "img.spic.part", dst / ".img.txt.123.abcdefgh.part"]
    for path in others:
        path.write_bytes(b"not ours")
    r = run("batch", src, dst, "--weights", tiny_weights, "-q", "2")
    assert r.exit_code == 0, r.output
    assert "temporary file" in r.stderr and "interrupted run" in r.stderr
    assert f"{BATCH_SIZE - len(finished)} done, {len(finished)} skipped" in r.stdout
    assert not stale.exists() and live.exists() and all(p.exists() for p in others)
    assert not [p for p in _part_files(dst) if p != live and p not in others]
    assert len(_outputs(dst)) == BATCH_SIZE
    _assert_complete(_outputs(dst))


# ----------------------------------------------------------------- full disk
_REAL_FDOPEN = os.fdopen


class _FullDisk:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, fd: int, mode: str):
        self.file = _REAL_FDOPEN(fd, mode)

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _fill_disk(monkeypatch, where: str) -> None:
    if where == "write":
        monkeypatch.setattr(image_io.os, "fdopen", _FullDisk)
    else:  # network file systems often report it only at fsync/close
        def fsync(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(image_io.os, "fsync", fsync)


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_single_file(tiny_weights, tmp_path, monkeypatch, where):
    src = _png(tmp_path / "in.png", random_image(40, 40))
    spic = tmp_path / "out" / "a.spic"
    spic.parent.mkdir()
    assert run("encode", src, tmp_path / "ok.spic", "--weights", tiny_weights).exit_code == 0
    _fill_disk(monkeypatch, where)
    r = run("encode", src, spic, "--weights", tiny_weights)
    _one_line_error(r, "No space left on device", str(spic))
    r = run("decode", tmp_path / "ok.spic", tmp_path / "out" / "b.png", "--weights", tiny_weights)
    _one_line_error(r, "No space left on device", "b.png")
    assert not list(spic.parent.iterdir())  # neither output nor temp file


def test_full_disk_stops_a_batch(tiny_weights, tmp_path, monkeypatch):
    src, dst = _image_folder(tmp_path / "src", count=4), tmp_path / "dst"
    _fill_disk(monkeypatch, "write")
    r = run("batch", src, dst, "--weights", tiny_weights)
    assert r.exit_code == 1, r.output
    assert "No space left on device" in r.stdout
    assert "0 done, 0 skipped (already done), 1 failed, 3 not done" in r.stdout
    assert not [p for p in dst.rglob("*") if p.is_file()]
    monkeypatch.undo()  # space freed: the rerun does everything
    r = run("batch", src, dst, "--weights", tiny_weights)
    assert r.exit_code == 0 and "4 done" in r.stdout, r.output


def test_full_disk_on_a_real_tmpfs(tiny_weights, tmp_path):
    """The same with a real 64 KiB tmpfs, where this machine allows mounting one."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                      str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        (mnt / "filler").write_bytes(b"\0" * 60_000)
        src = _png(tmp_path / "in.png", random_image(256, 384))
        r = run("encode", src, mnt / "a.spic", "--weights", tiny_weights, "-q", "6")
        _one_line_error(r, "No space left on device")
        assert [p.name for p in mnt.iterdir()] == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# -------------------------------------------------------------- input images
def _raw_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_malformed_images(tiny_weights, tmp_path):
    png = io.BytesIO()
    Image.fromarray(random_image(64, 64)).save(png, format="PNG")
    png = png.getvalue()
    jpeg = _jpeg_bytes(random_image(64, 64))
    idat = png.index(b"IDAT") + 20
    cases = {
        "truncated.png": (png[: len(png) // 2], "broken or truncated"),
        "bad_crc.png": (png[:idat] + bytes([png[idat] ^ 0xFF]) + png[idat + 1:], "broken"),
        "no_iend.png": (png[:-12], None),  # Pillow reads it: fine either way
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "broken or truncated"),
        "garbage.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, None),
        "header_only.png": (png[:33], ""),  # "not an image" or "truncated": both fine
        "empty.png": (b"", "empty file"),
        "zero_width.png": (_raw_png(0, 10), "not an image"),
        "text.jpg": (b"hello, world\n" * 10, "not an image"),
    }
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        out = tmp_path / "x.spic"
        r = run("encode", path, out, "--weights", tiny_weights)
        if needle is None and r.exit_code == 0:
            out.unlink()
            continue
        _one_line_error(r, name, *([needle] if needle else []))
        assert not out.exists() and not _part_files(tmp_path)


@pytest.mark.parametrize("dims,needle", [
    ((100000, 100000), "decompression bomb"),  # Pillow's hard limit
    ((10000, 10000), "decompression bomb"),  # over Pillow's warning limit
    # segpic's own limit (default 25 MP; Pillow's warning limit is ~89 MP)
    ((9000, 9000), f"over the limit of {DEFAULT_MAX_PIXELS / 1e6:.1f} MP"),
    ((70000, 2), "side over the limit of 65536"),
])
def test_image_bombs_refused_before_decoding(tiny_weights, tmp_path, dims, needle):
    path = tmp_path / "bomb.png"
    path.write_bytes(_raw_png(*dims))
    assert path.stat().st_size < 200
    start = time.process_time()  # CPU time: a busy machine must not fail the test
    with pytest.raises(ImageError, match=needle):
        load_image(path)
    assert time.process_time() - start < 1  # refused from the header, nothing decoded
    r = run("encode", path, tmp_path / "x.spic", "--weights", tiny_weights)
    _one_line_error(r, needle)
    assert "SEGPIC_MAX_PIXELS" in r.stderr or "side" in needle


def test_configured_pixel_limit(tiny_weights, tmp_path):
    src = _png(tmp_path / "in.png", random_image(40, 40))
    spic = tmp_path / "a.spic"
    assert run("encode", src, spic, "--weights", tiny_weights).exit_code == 0
    small = {"SEGPIC_MAX_PIXELS": "1000"}
    _one_line_error(run("encode", src, tmp_path / "b.spic", "--weights", tiny_weights,
                        env=small), "over the limit", "SEGPIC_MAX_PIXELS")
    # a file whose header asks for more pixels than allowed: refused before decoding
    _one_line_error(run("decode", spic, tmp_path / "a.png", "--weights", tiny_weights,
                        env=small), "40x40", "SEGPIC_MAX_PIXELS")
    _one_line_error(run("info", spic, env=small), "SEGPIC_MAX_PIXELS")
    assert not (tmp_path / "a.png").exists()
    for bad in ("lots", "-5", "0"):
        _one_line_error(run("info", spic, env={"SEGPIC_MAX_PIXELS": bad}), "SEGPIC_MAX_PIXELS")


@pytest.mark.parametrize("height,width", [(1, 1), (1, 20000)])
def test_extreme_shapes_round_trip(tiny_weights, tmp_path, height, width):
    src = _png(tmp_path / "in.png", random_image(height, width, seed=3))
    spic, out = tmp_path / "a.spic", tmp_path / "out.png"
    r = run("encode", src, spic, "--weights", tiny_weights, "-q", "1")
    assert r.exit_code == 0, r.output
    r = run("decode", spic, out, "--weights", tiny_weights)
    assert r.exit_code == 0, r.output
    assert np.asarray(Image.open(out)).shape == (height, width, 3)


def test_wrong_extensions_still_work(tiny_weights, tmp_path):
    jpeg_named_png = tmp_path / "photo.png"
    jpeg_named_png.write_bytes(_jpeg_bytes(random_image(30, 40)))
    png_named_jpg = _png(tmp_path / "in.png", random_image(30, 40))
    png_named_jpg = png_named_jpg.rename(tmp_path / "picture.jpg")
    for path in (jpeg_named_png, png_named_jpg):
        r = run("encode", path, tmp_path / f"{path.stem}.spic", "--weights", tiny_weights)
        assert r.exit_code == 0, r.output
    # a .spic named .png is refused as an image, with a clear message
    mislabelled = tmp_path / "coded.png"
    mislabelled.write_bytes((tmp_path / "photo.spic").read_bytes())
    _one_line_error(run("encode", mislabelled, tmp_path / "x.spic", "--weights", tiny_weights),
                    "not an image")


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their permissions")
def test_unreadable_file_and_folder(tiny_weights, tmp_path):
    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    _png(src / "ok.png", random_image(20, 20))
    secret = _png(src / "secret.png", random_image(20, 20))
    _png(src / "locked" / "c.png", random_image(20, 20))
    secret.chmod(0)
    (src / "locked").chmod(0)
    try:
        _one_line_error(run("encode", secret, tmp_path / "x.spic", "--weights", tiny_weights),
                        "permission denied")
        r = run("batch", src, tmp_path / "dst", "--weights", tiny_weights)
        assert r.exit_code == 1 and "1 done" in r.stdout and "2 failed" in r.stdout, r.output
    finally:
        secret.chmod(0o644)
        (src / "locked").chmod(0o755)


def test_unreadable_file_simulated(tiny_weights, tmp_path, monkeypatch):
    """The same failure as above, for runs as root: opening raises EACCES."""
    secret = _png(tmp_path / "secret.png", random_image(20, 20))
    real_open = Path.open

    def guarded_open(self, *args, **kwargs):
        if self.name == secret.name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    _one_line_error(run("encode", secret, tmp_path / "x.spic", "--weights", tiny_weights),
                    "secret.png", "permission denied")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_batch_with_symlink_loops_and_a_pipe(tiny_weights, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    _png(src / "a.png", random_image(20, 30))
    _png(src / "sub" / "b.png", random_image(30, 20))
    (src / "sub" / "loop").symlink_to(src, target_is_directory=True)  # folder loop
    (src / "self.png").symlink_to(src / "self.png")  # a link to itself
    (src / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(src / "pipe.png")  # opening it would wait forever for a writer
    proc = subprocess.run([sys.executable, "-m", "segpic_codec", "batch", str(src), str(dst),
                           "--weights", str(tiny_weights)], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 1, proc
    assert "2 done, 0 skipped (already done), 3 failed" in proc.stdout
    assert "pipe.png: not a regular file" in proc.stdout
    assert "self.png: symbolic link loop" in proc.stdout
    assert "dangling.jpg: broken symbolic link" in proc.stdout
    assert "symlinked folder, not followed" in proc.stderr
    assert (dst / "a.spic").is_file() and (dst / "sub" / "b.spic").is_file()
    assert not (dst / "sub" / "loop").exists()


def test_batch_output_collision(tiny_weights, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    _png(src / "a.png", random_image(20, 30, seed=1))
    (src / "a.jpg").write_bytes(_jpeg_bytes(random_image(20, 30, seed=2)))
    r = run("batch", src, dst, "--weights", tiny_weights)
    assert r.exit_code == 1, r.output
    assert "1 done" in r.stdout and "same output" in r.stdout
    assert [p.name for p in dst.iterdir()] == ["a.spic"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_input_is_bounded(tiny_weights, tmp_path):
    """A device or pipe has no size to check: reading stops at the limit."""
    small = {"SEGPIC_MAX_PIXELS": "1000"}
    _one_line_error(run("info", "/dev/zero", env=small), "too large to be a .spic file")
    _one_line_error(run("decode", "/dev/zero", tmp_path / "x.png", "--weights", tiny_weights,
                        env=small), "too large")
    _one_line_error(run("encode", "/dev/zero", tmp_path / "x.spic", "--weights", tiny_weights),
                    "not an image")

"""`segpic batch --jobs N` and `--executor ray`: the guarantees of the in-process
batch (skip what exists, atomic outputs, one bad file reported while the rest finish,
a rerun does what is missing, a clean Ctrl-C) plus workers that die mid-file.

A worker is made to die on chosen files by monkeypatching the executors' worker
entry point with the one of tests/batch_hooks.py: it leaves a partial temporary
file, as a worker killed mid-write does, and calls os._exit."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import batch_hooks
import pytest
from click.testing import CliRunner
from conftest import SHIPPED, random_image, sigint_as_in_a_terminal
from PIL import Image

from segpic_codec.cli import executors, main, ray_executor
from segpic_codec.segpic import layout

pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped weights not present")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def run(*args: object, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _folder(src: Path, names: list[str], size: int = 64) -> Path:
    for i, name in enumerate(names):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(random_image(size, size, seed=i)).save(src / name)
    return src


def _outputs(dst: Path) -> list[Path]:
    return sorted(p for p in dst.rglob("*.spic") if not p.name.startswith("."))


def _parts(dst: Path) -> list[Path]:
    return [p for p in dst.rglob("*") if p.name.endswith(".part")]


GOOD = ["a.png", "b.png", "sub/c.png", "dies.png", "flaky.png"]


DYING = ("dies.png", "flaky.png:once")  # the worker always dies; dies once


def _workers_die(monkeypatch, options: tuple[str, ...]) -> None:
    """The executor's workers die on DYING (tests/batch_hooks.py)."""
    if "ray" in options:
        import ray

        ray.cloudpickle.register_pickle_by_value(batch_hooks)
        monkeypatch.setattr(ray_executor, "ray_task", batch_hooks.dying_ray_task(DYING))
    else:
        monkeypatch.setattr(executors, "worker_main",
                            functools.partial(batch_hooks.dying_worker_main, dying=DYING))


def _check_bad_files_then_rerun(tmp_path: Path, monkeypatch, *options: str) -> None:
    """Good files coded, a corrupt one and one whose worker always dies reported,
    one whose worker dies once retried; no partial output; a rerun does the rest."""
    src, dst = _folder(tmp_path / "src", GOOD), tmp_path / "dst"
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    _workers_die(monkeypatch, options)
    r = run("batch", src, dst, "--device", "cpu", "-q", "2", *options)
    assert r.exit_code == 1, r.output
    assert "4 done, 0 skipped (already done), 2 failed" in r.stdout, r.stdout
    assert "broken.png: not an image" in r.stdout
    assert "dies.png: the worker died" in r.stdout and "3 attempts" in r.stdout
    assert [p.relative_to(dst).as_posix() for p in _outputs(dst)] == [
        "a.spic", "b.spic", "flaky.spic", "sub/c.spic"]
    assert not _parts(dst), _parts(dst)
    for path in _outputs(dst):  # the CRC covers every byte: a partial file cannot pass
        layout.read_header(path.read_bytes())
    before = (dst / "a.spic").stat().st_mtime_ns
    monkeypatch.undo()  # the workers live now
    r = run("batch", src, dst, "--device", "cpu", "-q", "2", *options)
    assert r.exit_code == 1, r.output  # the corrupt file fails again
    assert "1 done, 4 skipped (already done), 1 failed" in r.stdout, r.stdout
    assert (dst / "dies.spic").is_file() and not _parts(dst)
    assert (dst / "a.spic").stat().st_mtime_ns == before


def test_jobs_bad_files_and_rerun(tmp_path, monkeypatch):
    _check_bad_files_then_rerun(tmp_path, monkeypatch, "--jobs", "2")


def _interrupt(tmp_path: Path, weights: Path, *options: str, count: int = 24) -> None:
    """SIGINT once the first outputs exist: exit 130, a summary that counts what is
    on disk, no temporary file left, and a rerun finishes the rest. (The tiny test
    model: this is about stopping, and the rerun is quicker.)"""
    options = ("--weights", str(weights), *options)
    src = _folder(tmp_path / "src", [f"img{i:02d}.png" for i in range(count)])
    dst = tmp_path / "dst"
    proc = subprocess.Popen([sys.executable, "-m", "segpic_codec", "batch", str(src), str(dst),
                             "--device", "cpu", "-q", "2", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=sigint_as_in_a_terminal)
    # a bound against a hang, not a timing: Ray starts slowly on a busy machine
    deadline = time.monotonic() + 600
    while not dst.is_dir() or len(_outputs(dst)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no output in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    finished = _outputs(dst)
    assert 2 <= len(finished) < count, out
    assert (f"{len(finished)} done, 0 skipped (already done), 0 failed, "
            f"{count - len(finished)} not done (interrupted; rerun to finish them)") in out, out
    assert not _parts(dst), _parts(dst)
    r = run("batch", src, dst, "--device", "cpu", "-q", "2", "--weights", weights)
    assert r.exit_code == 0, r.output
    assert f"{count - len(finished)} done, {len(finished)} skipped" in r.stdout
    assert len(_outputs(dst)) == count and not _parts(dst)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_jobs_interrupted_then_resumed(tiny_weights, tmp_path):
    _interrupt(tmp_path, tiny_weights, "--jobs", "2")


@pytest.mark.parametrize("args,words", [
    (["--address", "127.0.0.1:6379"], "--address applies to --executor ray"),
    (["--executor", "ray", "--address", "127.0.0.1:6379", "--jobs", "2"], "--jobs sizes"),
    (["--jobs", "0"], "--jobs"),
    (["--executor", "dask"], "--executor"),
])
def test_bad_executor_options(tmp_path, args, words):
    src = _folder(tmp_path / "src", ["a.png"])
    r = run("batch", src, tmp_path / "dst", *args)
    assert r.exit_code == 2, r.output
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "dst").exists()


def test_ray_not_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    src = _folder(tmp_path / "src", ["a.png"])
    r = run("batch", src, tmp_path / "dst", "--executor", "ray")
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1, r.stderr
    assert 'pip install -e ".[cluster]"' in r.stderr and "segpic[cluster]" in r.stderr


# ------------------------------------------------------------------------ Ray
# The first test starts its own local cluster (in a subprocess, as a user's run
# does); the others share one cluster per module (a start costs about 10 s).
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ray_local_cluster_interrupted_then_resumed(tiny_weights, tmp_path):
    pytest.importorskip("ray", reason="Ray not installed (the cluster extra)")
    _interrupt(tmp_path, tiny_weights, "--executor", "ray", "--jobs", "2")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray not installed (the cluster extra)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_bad_files_and_rerun(ray_cluster, tmp_path, monkeypatch):
    _check_bad_files_then_rerun(tmp_path, monkeypatch, "--executor", "ray")

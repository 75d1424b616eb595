"""`segpic bench speed decode`: whole-process decode times of .spic files, this
code against another commit in the same run, beside WebP, AVIF and JPEG XL
decodes of the same image.

Each measurement is a fresh process that reads the file and writes a PNG (start,
imports, decoding, PNG encoding), the peak resident memory of that process with
it. The commits' runs are interleaved (this code, the other commit, this code,
...) so that a machine whose load changes during the run slows both alike; the
ratio of the medians is the number to read. The other commit runs from a
temporary `git worktree` of the checkout, the same Python and packages.

The classic codecs decode through Pillow (and pillow-jxl-plugin) in a process of
the same shape: `python -c "open; load; save PNG"`, their files made from the
image at Pillow's default quality.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..metadata import PNG_COMPRESS_LEVEL
from .common import REPO, BenchError

# Pillow's name of each classic format, the plugin it needs, its suffix
CLASSIC = {"webp": ("WEBP", None, ".webp"), "avif": ("AVIF", None, ".avif"),
           "jxl": ("JXL", "pillow_jxl", ".jxl")}
# the PNG written as segpic writes it (metadata.PNG_COMPRESS_LEVEL): the same work
PILLOW_DECODE = ("import sys\nfrom PIL import Image\n{plugin}"
                 "Image.open(sys.argv[1]).save(sys.argv[2], compress_level={level})\n")


@contextmanager
def checkout_of(commit: str) -> Iterator[Path]:
    """A temporary worktree of `commit` of this checkout (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="segpic-against-") as tmp:
        tree = Path(tmp) / "tree"
        done = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                               str(tree), commit], capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"cannot check out {commit}: "
                             f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(tree)], capture_output=True)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one process. `cwd`: not a checkout, whose
    package `python -m` would import before PYTHONPATH's."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"{' '.join(args)} failed: {(err.strip().splitlines() or ['?'])[-1]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def _segpic(tree: Path, src: Path, dst: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return [sys.executable, "-m", "segpic_codec", "decode", str(src), str(dst)], env


def _row(label: str, file: str, walls: list[float], peaks: list[float]) -> dict[str, Any]:
    return {"decoder": label, "file": file, "runs": len(walls),
            "median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "peak_mib": round(max(peaks), 1), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}


def measure(files: list[Path], against: str | None, runs: int, image: Path | None
            ) -> list[dict[str, Any]]:
    """Rows: per file, this code (and `against`) decoding it; per classic
    format, its decode of `image`."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="segpic-decode-speed-") as tmp:
        out = Path(tmp) / "out.png"
        trees = {"this code": REPO}
        with (checkout_of(against) if against else _nothing()) as other:
            if other is not None:
                trees[f"commit {against}"] = other
            for path in files:
                rows += _compare(trees, path.resolve(), out, runs)
        if image is not None:
            rows += _classic(image, Path(tmp), runs)
    return rows


def _compare(trees: dict[str, Path], path: Path, out: Path, runs: int
             ) -> list[dict[str, Any]]:
    """Each tree's decodes of one file, interleaved; the other commit, when it
    cannot decode the file (a file newer than it), gets a row with its error."""
    times: dict[str, tuple[list[float], list[float]]] = {}
    rows = []
    for label, tree in trees.items():
        try:
            wall, peak = _run(*_segpic(tree, path, out), cwd=out.parent)
        except BenchError as exc:
            if tree == REPO:
                raise
            # its one-line error, without this machine's paths
            rows.append({"decoder": label, "file": path.name,
                         "error": str(exc).rpartition(" failed: ")[2]})
            continue
        times[label] = ([wall], [peak])
    for _ in range(runs - 1):
        for label in times:
            wall, peak = _run(*_segpic(trees[label], path, out), cwd=out.parent)
            times[label][0].append(wall)
            times[label][1].append(peak)
    measured = [_row(label, path.name, walls, peaks) for label, (walls, peaks) in times.items()]
    if len(measured) == 2:
        this, that = measured[0]["median_s"], measured[1]["median_s"]
        measured[0]["ratio_to_other"] = round(this / that, 3) if that else None
    return measured + rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _classic(image: Path, tmp: Path, runs: int) -> list[dict[str, Any]]:
    """Each installed classic format: encode `image` once, time its decode."""
    from PIL import Image, features

    rows = []
    with Image.open(image) as im:
        rgb = im.convert("RGB")
    for name, (fmt, plugin, suffix) in CLASSIC.items():
        if plugin:
            try:
                __import__(plugin)
            except ImportError:
                continue
        elif not features.check(name):
            continue
        coded = tmp / f"{image.stem}{suffix}"  # Pillow's default quality
        rgb.save(coded, fmt)
        code = PILLOW_DECODE.format(plugin=f"import {plugin}\n" if plugin else "",
                                    level=PNG_COMPRESS_LEVEL)
        args = [sys.executable, "-c", code, str(coded), str(tmp / "classic.png")]
        walls, peaks = zip(*(_run(args, dict(os.environ), tmp) for _ in range(runs)),
                           strict=True)
        row = _row(f"Pillow {fmt}", coded.name, list(walls), list(peaks))
        row["bytes"] = coded.stat().st_size
        rows.append(row)
    return rows

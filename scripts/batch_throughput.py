"""Images per hour of `segpic batch` with 1, 2, ... local workers (issue 12): each
--jobs value encodes the same images into a fresh folder, wall clock measured
around the whole command (start-up, model loading and the stop included).

    python scripts/batch_throughput.py ../shared/data/kodak --codec moric \\
        --jobs 1,2 --limit 4 --codec-args "--preset fast" \\
        --out bench/results/batch_throughput.jsonl

Prints one markdown table row per run and appends one JSON line per run to --out.
--executor ray measures a local Ray cluster with --jobs CPUs instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segpic_codec.image_io import IMAGE_SUFFIXES


def _images(folder: Path, limit: int | None) -> list[Path]:
    found = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    return found[:limit] if limit else found


def measure(images: list[Path], codec: str, jobs: int, executor: str,
            codec_args: list[str]) -> dict:
    """One batch run over `images` (linked into a scratch folder) with `jobs` workers."""
    with tempfile.TemporaryDirectory(prefix="segpic-throughput-") as scratch:
        src, dst = Path(scratch) / "src", Path(scratch) / "dst"
        src.mkdir()
        for path in images:  # a link, not a copy: only these images, none of the rest
            os.symlink(path.resolve(), src / path.name)
        command = [sys.executable, "-m", "segpic_codec", "batch", str(src), str(dst),
                   "--codec", codec, "--jobs", str(jobs), "--executor", executor,
                   *codec_args]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        done = len(list(dst.rglob("*.spic"))) if dst.is_dir() else 0
        sizes = [p.stat().st_size for p in dst.rglob("*.spic")] if dst.is_dir() else []
    if proc.returncode != 0:
        # batch's summary (stdout) when it ran, else its one-line error (stderr)
        lines = proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines()[-1:]
        print(f"jobs={jobs}: exit code {proc.returncode}: " + "; ".join(lines or ["?"]),
              file=sys.stderr)
    return {"codec": codec, "executor": executor, "jobs": jobs, "images": len(images),
            "done": done, "seconds": round(seconds, 1),
            "images_per_hour": round(done * 3600 / seconds, 2) if seconds else None,
            "mean_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
            "exit_code": proc.returncode, "codec_args": codec_args,
            "cpus": os.cpu_count(), "machine": platform.node(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="images to encode (not recursive)")
    parser.add_argument("--codec", default="moric", help="segpic or moric [moric]")
    parser.add_argument("--jobs", default="1,2", help="comma-separated worker counts [1,2]")
    parser.add_argument("--executor", default="local", choices=["local", "ray"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--codec-args", default="",
                        help='more batch options, one string (e.g. "--preset fast -q 3")')
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: not a folder")
    images = _images(args.folder, args.limit)
    if not images:
        parser.error(f"{args.folder}: no images")
    try:
        counts = [int(j) for j in args.jobs.split(",")]
    except ValueError:
        parser.error(f"--jobs {args.jobs!r}: comma-separated integers, e.g. 1,2")
    print("| codec | executor | jobs | images | seconds | images/hour |")
    print("|---|---|---:|---:|---:|---:|")
    for jobs in counts:
        row = measure(images, args.codec, jobs, args.executor, shlex.split(args.codec_args))
        print(f"| {row['codec']} {' '.join(row['codec_args'])} | {row['executor']} | {jobs} | "
              f"{row['done']}/{row['images']} | {row['seconds']} | {row['images_per_hour']} |",
              flush=True)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

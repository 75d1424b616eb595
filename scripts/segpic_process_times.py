"""Whole-process times of the `segpic` command as a user runs it: `segpic encode`,
`segpic decode` and `segpic info` on one image, each a fresh process (Python start,
imports, weights, coding, file I/O), median of N runs, with each process's peak
resident memory (from the kernel's rusage of the child).

    python scripts/segpic_process_times.py ../shared/data/kodak/kodim23.png
    python scripts/segpic_process_times.py ../shared/data/kodak/kodim23.png --large --runs 1

--large also times a 3840x2160 version of the image (Lanczos resize), the 4K case.
Results: one JSON line per command appended to --out, and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process running `args`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_maxrss / 1024  # Linux: KB


def measure(name: str, args: list[str], runs: int, env: dict[str, str],
            image: str) -> dict:
    walls, peaks = [], []
    for _ in range(runs):
        wall, peak = run_once(args, env)
        walls.append(wall)
        peaks.append(peak)
    return {"command": name, "image": image, "runs": runs,
            "median_s": round(statistics.median(walls), 3),
            "min_s": round(min(walls), 3), "peak_mb": round(max(peaks), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--quality", default="3")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--large", action="store_true", help="also a 3840x2160 resize")
    ap.add_argument("--only-large", action="store_true")
    ap.add_argument("--out", type=Path,
                    default=Path("bench/results/segpic-cpu-speed/process_times.jsonl"))
    args = ap.parse_args()
    exe = shutil.which("segpic")
    base = [exe] if exe else [sys.executable, "-m", "segpic_codec"]
    env = dict(os.environ)
    cases = [] if args.only_large else [(args.image.name, args.image, args.runs)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.large or args.only_large:
            from PIL import Image

            big = Path(tmp) / f"{args.image.stem}-3840x2160.png"
            Image.open(args.image).convert("RGB").resize((3840, 2160), Image.LANCZOS).save(big)
            cases.append((big.name, big, 1 if not args.only_large else args.runs))
        rows = []
        for label, image, runs in cases:
            spic, png = Path(tmp) / "out.spic", Path(tmp) / "out.png"
            for name, cmd in (
                ("encode", ["encode", str(image), str(spic), "--quality", args.quality,
                            "--device", "cpu"]),
                ("decode", ["decode", str(spic), str(png), "--device", "cpu"]),
                ("info", ["info", str(spic)]),
            ):
                row = measure(name, base + cmd, runs, env, label)
                row.update(quality=args.quality, cpu=platform.processor() or platform.machine(),
                           cores=os.cpu_count(), date=time.strftime("%Y-%m-%d"))
                rows.append(row)
                print(f"{label:28s} {name:7s} median {row['median_s']:7.2f} s  "
                      f"min {row['min_s']:7.2f} s  peak {row['peak_mb']:7.0f} MB", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

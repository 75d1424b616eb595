"""Fit the drift tables of MoRIC's λ controller (`training/rate_control.py`) to
hard-rounded fixed-λ traces: at each progress p of the budget, how far the
run still moves from what an evaluation measures there.

    python scripts/moric_experiment.py IMG --steps 420 --quality Q --trace-every 21 \
        --hard-trace --out bench/results/targets/drift-traces.jsonl   # per trace
    python scripts/moric_drift_fit.py bench/results/targets/drift-traces.jsonl

Rate: ln(end bpp / bpp now) = A(p) + S(p) ln(bpp now), least squares over the
traces (the rate falls less, late in a run, the higher it is). PSNR: end - now
= C(p) + T(p) (PSNR now - 30) (it rises more the higher it is).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", type=Path)
    args = parser.parse_args()
    traces = [json.loads(line) for line in args.traces.open()]
    rows = []
    for i in range(len(traces[0]["trace"])):
        # of the traced run's steps (after a coarse start, the full-size run's)
        first = traces[0]
        p = first["trace"][i][0] / first.get("trace_steps", first["steps"])
        bpp = np.array([t["trace"][i][1] for t in traces])
        psnr = np.array([t["trace"][i][2] for t in traces])
        # where each run ended: its best state's hard-rounded evaluation
        end_bpp = np.array([t["bpp"] for t in traces])
        end_psnr = np.array([t["psnr"] for t in traces])
        s, a = np.polyfit(np.log(bpp), np.log(end_bpp / bpp), 1)
        t, c = np.polyfit(psnr - 30.0, end_psnr - psnr, 1)
        rows.append((round(p, 3), round(float(a), 4), round(float(s), 4), round(float(c), 3),
                     round(float(t), 4)))
    for name, k in (("A", 1), ("S", 2), ("C", 3), ("T", 4)):
        print(f"{name} = {tuple(r[k] for r in rows)}")
    print(f"PROGRESS = {tuple(r[0] for r in rows)}")


if __name__ == "__main__":
    main()

"""Medians of interleaved A/B rows (scripts/segpic_coding_times_ab.sh): per side,
the median over runs of the load time and of each run's median encode and decode
time, new/old ratios of those medians, and the ratio of each pair of runs.

    python scripts/segpic_coding_times_summary.py OUT.jsonl
"""

from __future__ import annotations

import json
import sys
from statistics import median


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    sides: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        side = sides.setdefault(row["label"], {"load": [], "encode": [], "decode": []})
        side["load"].append(row["load_s"])
        side["encode"].append(median(row["encode_s"]))
        side["decode"].append(median(row["decode_s"]))
    print("| side | runs | load s | encode s | decode s |")
    print("|---|---|---|---|---|")
    for label, side in sides.items():
        print(f"| {label} | {len(side['load'])} | " + " | ".join(
            f"{median(side[k]):.2f}" for k in ("load", "encode", "decode")) + " |")
    if {"old", "new"} <= sides.keys():
        ratios = [f"{k} x{median(sides['new'][k]) / median(sides['old'][k]):.2f}"
                  for k in ("load", "encode", "decode")]
        print("new / old (medians):", ", ".join(ratios))
        for k in ("load", "encode", "decode"):  # run i of each side: the same minutes
            pairs = zip(sides["old"][k], sides["new"][k], strict=False)
            print(f"  {k} per pair:", " ".join(f"{n / o:.2f}" for o, n in pairs))


if __name__ == "__main__":
    main()

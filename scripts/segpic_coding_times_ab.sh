#!/usr/bin/env bash
# In-process SegPIC load, encode and decode times of this checkout against another
# tree (a worktree of an earlier commit), interleaved: old, new, old, new, ... so
# that both see the same machine over the same minutes. Each run is one process:
# load once, then --runs encodes and decodes (scripts/segpic_coding_times.py).
#
#   bash scripts/segpic_coding_times_ab.sh OLD_TREE OUT.jsonl [PAIRS] [THREADS] [IMAGE]
#
# THREADS: torch's threads (default: torch's own default). Summarise with
# scripts/segpic_coding_times_summary.py OUT.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "${1:?usage: segpic_coding_times_ab.sh OLD_TREE OUT.jsonl [PAIRS] [THREADS] [IMAGE]}")
out=${2:?usage: segpic_coding_times_ab.sh OLD_TREE OUT.jsonl [PAIRS] [THREADS] [IMAGE]}
pairs=${3:-4}
threads=${4:-}
image=${5:-$(realpath "${SEGPIC_SHARED:-../shared}/data/kodak/kodim23.png")}
for _ in $(seq "$pairs"); do
  for side in old new; do
    tree=$([ "$side" = old ] && echo "$old" || echo "$PWD")
    PYTHONPATH="$tree" python scripts/segpic_coding_times.py "$image" --label "$side" \
      --jsonl "$out" ${threads:+--threads "$threads"}
  done
done

#!/usr/bin/env bash
# Whole-process `segpic decode` of a SegPIC file, this checkout against another
# tree (a worktree of an earlier commit), interleaved: old, new, old, new, ...
# Each tree decodes the file it encodes itself (an older tree may not read the
# newer file's flags), at quality 3, to PNG.
#
#   bash scripts/segpic_process_decode_ab.sh OLD_TREE OUT.jsonl [RUNS] [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: segpic_process_decode_ab.sh OLD_TREE OUT.jsonl [RUNS] [IMAGE]"
old=$(realpath "${1:?$usage}")
out=${2:?$usage}
runs=${3:-5}
image=${4:-$(realpath "${SEGPIC_SHARED:-../shared}/data/kodak/kodim23.png")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree_of() { if [ "$1" = old ]; then echo "$old"; else echo "$PWD"; fi; }
for side in old new; do
  PYTHONPATH=$(tree_of $side) python -m segpic_codec encode "$image" "$work/$side.spic" \
    --codec segpic --quality 3 >/dev/null
done
for run in $(seq "$runs"); do
  for side in old new; do
    start=$(date +%s.%N)
    PYTHONPATH=$(tree_of $side) python -m segpic_codec decode "$work/$side.spic" \
      "$work/$side.png" >/dev/null
    end=$(date +%s.%N)
    python -c "import json, sys; print(json.dumps({'side': sys.argv[1], 'run': int(sys.argv[2]),
      'decode_process_s': round(float(sys.argv[4]) - float(sys.argv[3]), 3)}))" \
      "$side" "$run" "$start" "$end" >> "$out"
  done
done

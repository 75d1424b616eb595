#!/bin/bash
# interleaved whole-process encodes of kodim23: old (3492e7c) and new (/work/wt-new), presets given
IMG=/work/shared/data/kodak/kodim23.png
for preset in "$@"; do
  for tree in /work/wt-base /work/wt-new; do
    s=$(date +%s.%N)
    (cd $tree && PYTHONPATH=$tree python -m segpic_codec encode $IMG /tmp/pt-$(basename $tree)-$preset.spic --codec moric --preset $preset 2>/dev/null >/dev/null)
    e=$(date +%s.%N)
    echo "{\"tree\": \"$(basename $tree)\", \"commit\": \"$(cd $tree && git rev-parse --short HEAD)\", \"preset\": \"$preset\", \"seconds\": $(echo "$e - $s" | bc), \"bytes\": $(stat -c %s /tmp/pt-$(basename $tree)-$preset.spic)}"
  done
done

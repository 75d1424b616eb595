#!/usr/bin/env bash
# SegPIC CPU encode/decode times of this checkout against an earlier commit, on the
# same machine in the same minutes (machines differ too much for figures taken on
# different days to compare): `segpic bench --codecs segpic` on the same Kodak
# images, once with the old code (a git worktree) and once with this one.
#
#   bash scripts/segpic_speed_ab.sh 094280f [kodim01,kodim08,kodim15,kodim23] [passive|default]
#
# The OpenMP wait policy is PASSIVE unless the third argument says `default` (what
# `segpic encode` gets: torch's threads spin between parallel regions, faster on an
# idle machine, several times slower beside another job).
# Writes bench/results/segpic-cpu-speed/ab-<commit>[-default]/{old,new}/ and prints
# both rows.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: segpic_speed_ab.sh COMMIT [IMAGES]}
images=${2:-kodim01,kodim08,kodim15,kodim23}
policy=${3:-passive}
case $policy in
  passive) export OMP_WAIT_POLICY=PASSIVE; out=bench/results/segpic-cpu-speed/ab-$old ;;
  default) unset OMP_WAIT_POLICY; out=bench/results/segpic-cpu-speed/ab-$old-default ;;
  *) echo "policy must be passive or default" >&2; exit 2 ;;
esac
tree=$(mktemp -d)/old
git worktree add --detach -q "$tree" "$old"
trap 'git worktree remove --force "$tree"' EXIT
rm -rf "$tree/weights" && ln -s "$PWD/weights" "$tree/weights"  # same weights, no copy
shared=$(realpath "${SEGPIC_SHARED:-../shared}/data/kodak")
for side in old new; do
  root=$([ "$side" = old ] && echo "$tree" || echo "$PWD")
  (cd "$root" && PYTHONPATH="$root" python -m segpic_codec bench "$shared" \
      --codecs segpic --device cpu --threads 2 --images "$images" --anchors none \
      --out "$OLDPWD/$out/$side" > /dev/null)
  echo "$side ($([ "$side" = old ] && echo "$old" || git rev-parse --short HEAD)):"
  grep -m1 "^| segpic" "$out/$side/results.md"
done

#!/usr/bin/env bash
# Wait (at most SECONDS) while the detached training runs work, then copy their
# logs and latest exported weights to $OUT/<arm>/.   usage: scripts/device_poll.sh SECONDS
set -u
deadline=$(( $(date +%s) + $1 ))
while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f "segpic_codec train" > /dev/null; do
  sleep 5
done
for arm in masks grid; do
  mkdir -p "$OUT/$arm"
  tail -c 3000 /root/runs-$arm.log | tr '\r' '\n' | tail -n 4
  tail -n 2 /root/runs/$arm/log.jsonl 2>/dev/null
  cp /root/runs/$arm/log.jsonl "$OUT/$arm/" 2>/dev/null
  cp /root/runs/$arm/weights/* "$OUT/$arm/" 2>/dev/null
done
pgrep -f "segpic_codec train" > /dev/null && echo RUNNING || echo FINISHED

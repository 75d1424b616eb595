#!/usr/bin/env bash
# Training on a lent GPU machine (see README, "Training"). Starts the shipped run
# (masks) and the ablation run (grid partitions) side by side with the same time
# budget, detached with setsid so they outlive the command that starts them; later
# calls of scripts/device_poll.sh copy their exported weights back.
#   usage: scripts/device_train.sh SECONDS [extra segpic train options]
set -u
budget=$1; shift
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for arm in masks grid; do
  mode=auto; [ "$arm" = grid ] && mode=grid
  setsid nohup python3 -m segpic_codec train --data .trainpack --run-dir /root/runs/$arm \
    --masks $mode --time-budget "$budget" --workers 8 --checkpoint-every 180 "$@" \
    > /root/runs-$arm.log 2>&1 < /dev/null &
done
echo started

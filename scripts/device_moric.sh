#!/usr/bin/env bash
# MoRIC on a lent GPU machine (README, "MoRIC"): the CUDA checks, then the Kodak
# subset benchmark, in one command (the machine is given back between calls).
#   usage: scripts/device_moric.sh STEPS_LIST JOBS [bench options]
# Needs, carried beside the working tree: .whl/ (wheels the machine lacks:
# constriction, pillow, pillow-heif, pillow-jxl-plugin, pytorch-msssim,
# bjontegaard) and .devdata/{kodak4,anchors} (the images and published curves).
set -u
steps=$1; jobs=$2; shift 2
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2>&1 | tail -1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 scripts/moric_cuda_check.py .devdata/kodak4/kodim23.png --steps 300 \
    --json "$OUT/cuda_check.json"
python3 -m segpic_codec bench rd .devdata/kodak4 --anchors .devdata/anchors \
    --codecs moric,avif,heic,jxl --images kodim01,kodim05,kodim15,kodim23 \
    --steps "$steps" --jobs "$jobs" --threads 16 --device cuda --out "$OUT/bench" "$@" \
    2>&1 | tail -n 60

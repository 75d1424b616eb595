"""Step time of the partial-band knob (runs only in a tree of 32934e4, which has it)."""
import sys
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from segpic_codec.moric.contours.partition import auto_partition
from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.recipe import PRESETS

torch.set_num_threads(1)
pixels = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
regions = int(sys.argv[2]) if len(sys.argv) > 2 else 1
h, w = pixels.shape[:2]
target = torch.from_numpy(pixels).permute(2, 0, 1).reshape(3, -1).float() / 255.0
labels = auto_partition(pixels, regions) if regions > 1 else None
res = {}
opts = {}
for share in (1.0, 0.5, 0.25):
    recipe = replace(PRESETS["medium"], partial_share=share)
    budget = Budget(10**6, None, time.perf_counter())
    opt = Optimisation(target, h, w, 1e-3, recipe, budget, two_core=False, labels=labels)
    model, optimizer = opt.new_candidate(0)
    opt.partial = share < 1
    for _ in range(3):
        opt.train_step(model, optimizer, "softround", 0.3, 0.2)
    opts[share] = (opt, model, optimizer)
    res[share] = []
for _round in range(4):
    for share, (opt, model, optimizer) in opts.items():
        t = time.perf_counter()
        for _ in range(5):
            opt.train_step(model, optimizer, "softround", 0.3, 0.2)
        res[share].append((time.perf_counter() - t) / 5)
base = np.median(res[1.0])
for share, v in res.items():
    step = np.median(v)
    print(share, f"median {step:.3f} s/step", f"ratio {step / base:.3f}",
          "bands", opts[share][0].band_count)

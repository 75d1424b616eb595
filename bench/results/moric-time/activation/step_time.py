"""Step time of the medium recipe with GELU against ReLU synthesis, one thread, interleaved."""
import statistics
import sys
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from segpic_codec.moric.training.encoder import Budget, Optimisation
from segpic_codec.moric.training.recipe import PRESETS

torch.set_num_threads(1)
pixels = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
h, w = pixels.shape[:2]
target = torch.from_numpy(pixels).permute(2, 0, 1).reshape(3, -1).float() / 255.0
runs = {}
for act in ("gelu", "relu"):
    recipe = replace(PRESETS["medium"], activation=act, prior=False)
    opt = Optimisation(target, h, w, 1e-3, recipe, Budget(10**6, None, time.perf_counter()),
                       two_core=False)
    model, optimizer = opt.new_candidate(0)
    for _ in range(3):
        opt.train_step(model, optimizer, "softround", 0.3, 0.2)
    runs[act] = (opt, model, optimizer, [])
for _round in range(4):
    for opt, model, optimizer, times in runs.values():
        t = time.perf_counter()
        for _ in range(5):
            opt.train_step(model, optimizer, "softround", 0.3, 0.2)
        times.append((time.perf_counter() - t) / 5)
base = statistics.median(runs["gelu"][3])
for act, (*_, times) in runs.items():
    m = statistics.median(times)
    print(act, f"{m:.3f} s/step", f"ratio {m / base:.3f}", [round(x, 3) for x in times])

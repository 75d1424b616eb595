"""Smoke test on CUDA: a reduced-width network with the authors' structure (shifted
windows, sub-pixel h_s, GDN up blocks, medians, no gains) encodes on CUDA and the
file decodes on the CPU to the encoder's reconstruction; the CUDA float32 trace
agrees with the CPU one."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from segpic_codec.segpic.codec import Codec
from segpic_codec.segpic.config import get_config
from segpic_codec.segpic.networks.model import SegPIC
from segpic_codec.segpic.weights.levels import save_levels
from segpic_codec.segpic.weights.trace import trace


def main() -> int:
    config = replace(get_config("tiny"), hyper_upsample="subpel", up_gdn="forward",
                     attn_shift=True, proto_enc_synthesis=(4, 12, 16), median_offsets=True,
                     gain_units=False, lambdas=(0.01,))
    torch.manual_seed(0)
    net = SegPIC(config)
    with torch.no_grad():
        net.g_a2[1].sal.net[2].bias[: config.M].fill_(3.0)
        for density in (net.hyperprior.density, net.transform_prototypes.density,
                        net.entropy_prototypes.density):
            density.quantiles[:, 0, 1].uniform_(-1.5, 1.5)
    x = torch.rand(1, 3, 256, 192)
    cpu = trace(net.eval(), x)
    gpu = trace(net.to("cuda").eval(), x.cuda())
    for name in ("y", "z", "x_hat"):
        print(name, (cpu[name] - gpu[name].cpu()).abs().max().item())
    with tempfile.TemporaryDirectory() as tmp:
        save_levels([(net.cpu().state_dict(), {"note": "smoke test"})], config, Path(tmp) / "w")
        enc = Codec.load(Path(tmp) / "w", device="cuda")
        dec = Codec.load(Path(tmp) / "w", device="cpu")
        image = (np.random.default_rng(1).random((200, 300, 3)) * 255).astype(np.uint8)
        result = enc.encode(image, quality=1)
        same = np.array_equal(dec.decode(result.data), result.reconstruction)
        print("bytes", len(result.data), "cuda encode -> cpu decode identical:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""Does torch.compile (inductor's C++ backend) make MoRIC's training step
cheaper on a CPU? Times one band's synthesis and squared error, forward and
backward, eager and compiled, one thread.

    python scripts/moric_compile_probe.py [--rows 48] [--width 768]

The encoder's own 3x3 convolution (a custom autograd.Function whose backward
calls replication_pad2d_backward) does not compile: inductor asserts a stride
of that op's output. Both sides here pad by concatenating the edge rows and
columns instead, which compiles; eager is timed before and after.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import segpic_codec.moric.networks.synthesis as synthesis_module
from segpic_codec.moric.networks.synthesis import Synthesis, pixel_coordinates


def conv3x3_by_concatenation(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                             height: int, width: int) -> torch.Tensor:
    image = x.reshape(1, x.shape[0], height, width)
    image = torch.cat([image[:, :, :1], image, image[:, :, -1:]], dim=2)
    image = torch.cat([image[:, :, :, :1], image, image[:, :, :, -1:]], dim=3)
    return F.conv2d(image, weight, bias).reshape(weight.shape[0], -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=48)  # a band with its halo rows
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    synthesis_module.conv3x3_replicate = conv3x3_by_concatenation
    torch.set_num_threads(1)
    torch.manual_seed(0)
    h, w = args.rows, args.width
    synthesis = Synthesis(24, "gelu", 1)
    for p in synthesis.parameters():
        torch.nn.init.normal_(p, std=0.1)
    z = torch.randn(7, h * w, requires_grad=True)
    coords, target = pixel_coordinates(h, w), torch.rand(3, h * w)

    def loss(z: torch.Tensor) -> torch.Tensor:
        return (synthesis(z, coords, h, w) - target).square().sum()

    def seconds(fn) -> float:
        for _ in range(3):
            fn(z).backward()
        start = time.perf_counter()
        for _ in range(args.repeats):
            fn(z).backward()
        return (time.perf_counter() - start) / args.repeats

    eager = seconds(loss)
    start = time.perf_counter()
    compiled = torch.compile(loss, dynamic=False)
    compiled(z).backward()
    compile_s = time.perf_counter() - start
    fast = seconds(compiled)
    eager = min(eager, seconds(loss))
    print(f"{h}x{w} band, forward + backward: eager {1e3 * eager:.2f} ms, compiled "
          f"{1e3 * fast:.2f} ms (compiled / eager {fast / eager:.2f}); compiling took "
          f"{compile_s:.1f} s")


if __name__ == "__main__":
    main()

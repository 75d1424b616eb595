"""Two cores for one training step: the ARM's rate and the synthesis'
distortion on two threads.

Given the quantised latents, the two halves of the loss are independent and
cost about the same (on a 768x512 image, ~170 ms each on one core). PyTorch
splits single operations over threads well only when they are large; here
most are small and intra-op threads mostly wait on each other (badly so on a
busy machine). So each half runs whole on its own Python thread (torch
releases the GIL in its kernels) with one intra-op thread each, including its
backward pass; the two gradients w.r.t. the latents are then summed and sent
back through the quantiser.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from .model import MoricModel


class TwoCoreLoss:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moric-rate",
                                        initializer=torch.set_num_threads, initargs=(1,))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __call__(self, model: MoricModel, quantized: Tensor, target: Tensor, rate_weight: float,
                 backward: bool) -> tuple[Tensor, Tensor]:
        """(mse, bits) of the quantised canvas; with backward=True, also the
        gradients of mse + rate_weight * bits into every parameter."""
        grad_q = backward and quantized.requires_grad
        for_rate = quantized.detach().requires_grad_(grad_q)
        for_distortion = quantized.detach().requires_grad_(grad_q)

        def rate_half() -> Tensor:
            with torch.set_grad_enabled(backward):  # grad mode is per thread
                bits = model.rate_bits(for_rate)
                if backward:
                    (bits * rate_weight).backward()
            return bits.detach()

        future = self._pool.submit(rate_half)
        with torch.set_grad_enabled(backward):
            mse = model.squared_error(for_distortion, target) / (3 * model.drawn_pixels)
            if backward:
                mse.backward()
        bits = future.result()
        if grad_q:
            assert for_rate.grad is not None and for_distortion.grad is not None
            quantized.backward(for_rate.grad + for_distortion.grad)
        return mse.detach(), bits

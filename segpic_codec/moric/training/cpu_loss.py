"""The training loss on a CPU: the rate and the distortion of one step, cut
into cache-sized pieces of work shared out over one or two threads.

Given the quantised latents, the two halves of the loss are independent: the
ARM's rate (one piece, already cache-blocked in `arm_rate`) and the
synthesis' distortion, here computed in bands of rows (`banded.bands`: a few
ten thousand pixels, plus the halo rows the 3x3 layers need). A band's
activations stay in cache, so computing its value and its gradients at once
(one small autograd graph per band) beats one graph over the whole image by
about a quarter on one core, and the bands balance the threads: whichever
thread finishes the rate takes the bands that are left.

PyTorch splits single operations over threads well only when they are large;
here most are small, so each thread runs whole pieces with one intra-op
thread (torch releases the GIL in its kernels). Which thread computes a piece
varies from step to step, but every piece's result is kept apart and the
results are summed in a fixed order, so a step's gradients do not depend on
the scheduling: an encode is reproducible.

No tensor that requires a gradient is used by two threads at once: the rate
builds no graph (its gradients are computed by hand from detached values, in
`arm_rate`), the upsampling starts from a leaf of its own, and a worker thread runs the
synthesis through a replica whose parameters share the model's storage but
not its autograd leaves. (Building graphs from one leaf on two threads can
deadlock PyTorch: one thread holds the leaf's lock waiting for the GIL while
the other, holding the GIL, indexes the leaf.) (The caller runs with one intra-op
thread too, as the workers do: a product split over threads may round
differently.)
"""

from __future__ import annotations

import copy
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import Tensor, nn
from torch.autograd.profiler import record_function

from ..networks.banded import band_image, bands
from ..networks.model import MoricModel

# The pieces of a step, as torch.profiler ranges (`segpic bench speed profile`
# sums them); record_function costs microseconds when no profiler listens.
PIECES = {
    "upsampling": "moric.upsampling",  # the latent grids -> dense latents (forward)
    "rate": "moric.rate",  # the ARM's rate, forward and backward
    "synthesis": "moric.synthesis",  # one band's synthesis and error, forward and backward
    "gradients": "moric.gradients",  # summing the pieces; upsampling and quantiser backward
    "quantise": "moric.quantise",  # soft rounding and noise of the latents (forward)
    "optimiser": "moric.optimiser",  # gradient clipping and the optimisers' step
}

# rows per band at least: on a wide image the 2 + 2 halo rows of a band of
# banded.BAND_PIXELS would otherwise be half the work (and their gradients,
# kept until the end of the step, a lot of memory)
MIN_BAND_ROWS = 16


class _Band:
    """One band's results: its squared error and, with gradients, those of the
    synthesis parameters and of its halo rows (its own rows' gradient is
    written straight into the shared gradient of the dense latents)."""

    def __init__(self, sse: Tensor, params: list[Tensor | None] | None = None,
                 halo: tuple[Tensor, Tensor] | None = None):
        self.sse, self.params, self.halo = sse, params, halo


class CpuLoss:
    """(mse, bits) of a quantised canvas and, on request, the gradients of
    mse + rate_weight * bits in every parameter's .grad."""

    def __init__(self, workers: int = 2):
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers - 1,
                                        thread_name_prefix="moric-loss",
                                        initializer=torch.set_num_threads, initargs=(1,)) \
            if self.workers > 1 else None
        self._replica: tuple[nn.Module, nn.Module] | None = None  # (synthesis, its replica)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __call__(self, model: MoricModel, quantized: Tensor, target: Tensor, rate_weight: float,
                 backward: bool) -> tuple[Tensor, Tensor]:
        replica = self._replica_of(model.synthesis) if self._pool is not None else None
        return _Step(model, quantized, target, rate_weight, backward, replica).run(
            self._pool, self.workers)

    def _replica_of(self, synthesis: nn.Module) -> nn.Module:
        """The workers' copy of `synthesis`: parameters that share its storage
        (so they follow the optimiser's in-place updates) but are other leaves."""
        if self._replica is None or self._replica[0] is not synthesis:
            replica = copy.deepcopy(synthesis)
            for mine, theirs in zip(replica.parameters(), synthesis.parameters(), strict=True):
                mine.data = theirs.data
            self._replica = (synthesis, replica)
        return self._replica[1]


class _Step:
    def __init__(self, model: MoricModel, quantized: Tensor, target: Tensor, rate_weight: float,
                 backward: bool, replica: nn.Module | None):
        self.model, self.target, self.backward = model, target, backward
        self.rate_weight = rate_weight
        self.quantized = quantized
        self.grad_q = backward and quantized.requires_grad
        # the rate's values (its gradients are computed by hand, without autograd)
        # and the upsampling's own leaf (see the module's docstring)
        self.rate_values = quantized.detach()
        self.leaf = quantized.detach().requires_grad_(self.grad_q)
        self.main_thread = threading.get_ident()
        self.replica = replica
        self.height, self.width = model.height, model.width
        self.bands = bands(self.height, self.width, min_rows=MIN_BAND_ROWS)
        self.scale = 1.0 / (3 * model.drawn_pixels)  # squared error -> mse
        self.synthesis_params = list(model.synthesis.parameters())
        self.arm_params = list(model.arm.parameters())
        self.results: list[object] = [None] * (1 + len(self.bands))
        self._next = itertools.count()  # next() on a count is atomic under the GIL
        self._dense_ready = threading.Event()
        self._failed = False
        self.dense: Tensor | None = None
        self.dense_values: Tensor | None = None  # dense, detached: sliced by every thread
        self.grad_dense: Tensor | None = None

    def run(self, pool: ThreadPoolExecutor | None, workers: int) -> tuple[Tensor, Tensor]:
        futures: list[Future] = [pool.submit(self._work) for _ in range(workers - 1)] \
            if pool is not None else []
        try:
            with torch.set_grad_enabled(self.backward), record_function(PIECES["upsampling"]):
                self.dense = self.model.dense_latents(self.leaf)
            self.dense_values = self.dense.detach()
            want_dense = self.backward and self.dense.requires_grad
            self.grad_dense = torch.zeros_like(self.dense) if want_dense else None
            self._dense_ready.set()
            self._work()
        finally:
            self._failed = not self._dense_ready.is_set()
            self._dense_ready.set()  # never leave a worker waiting
            for f in futures:
                f.result()  # re-raises a worker's error
        return self._gather()

    # -- the pieces ----------------------------------------------------------
    def _work(self) -> None:
        for item in self._next:
            if item >= len(self.results):
                return
            if item == 0:
                with record_function(PIECES["rate"]):
                    self.results[0] = self._rate()
                continue
            self._dense_ready.wait()
            if self._failed:
                return
            with record_function(PIECES["synthesis"]):
                self.results[item] = self._band(*self.bands[item - 1])

    def _rate(self) -> tuple[Tensor, list[Tensor] | None]:
        """-> (bits, gradients of rate_weight * bits: [canvas] + ARM parameters)."""
        if not self.backward:
            with torch.no_grad():  # grad mode is per thread: no graph on a worker either
                return self.model.rate_bits(self.rate_values), None
        # one pass that gives the bits and their gradients (autograd's backward
        # would compute every block's forward a second time)
        bits, grad_canvas, grads = self.model.rate_bits_and_grads(
            self.rate_values, self.rate_weight, self.grad_q)
        return bits, ([grad_canvas] if self.grad_q else []) + grads

    def _band(self, r0: int, r1: int, i0: int, i1: int) -> _Band:
        assert self.dense_values is not None
        w = self.width
        z = self.dense_values[:, i0 * w: i1 * w].detach().requires_grad_(
            self.grad_dense is not None)
        synthesis = self.model.synthesis if threading.get_ident() == self.main_thread \
            else self.replica
        params = list(synthesis.parameters())  # in the same order as the model's
        with torch.set_grad_enabled(self.backward):
            image = band_image(synthesis, z, self.model.coords, w, (r0, r1, i0, i1),
                               self.model.regions)
            error = (image - self.target[:, r0 * w: r1 * w]).reshape(-1)
            sse = torch.dot(error, error)
            if not self.backward:
                return _Band(sse)
            if not sse.requires_grad:  # a band that draws no pixel (single-object coding)
                empty = z.new_zeros(z.shape[0], 0)
                return _Band(sse.detach(), [None] * len(self.synthesis_params), (empty, empty))
            want_z = self.grad_dense is not None
            grads = list(torch.autograd.grad(sse * self.scale, ([z] if want_z else []) + params,
                                             allow_unused=True))
        halo = None
        if want_z:
            assert self.grad_dense is not None
            g = grads.pop(0)
            top, own = (r0 - i0) * w, (r1 - i0) * w
            # own rows belong to this band alone: no other thread writes them
            self.grad_dense[:, r0 * w: r1 * w] = g[:, top:own]
            halo = (g[:, :top].clone(), g[:, own:].clone())  # not views: g is freed
        return _Band(sse.detach(), grads, halo)

    # -- the sums, in a fixed order ------------------------------------------
    def _gather(self) -> tuple[Tensor, Tensor]:
        bits, rate_grads = self.results[0]
        band_results: list[_Band] = self.results[1:]
        sse = band_results[0].sse.clone()
        for b in band_results[1:]:
            sse += b.sse
        if self.backward:
            with record_function(PIECES["gradients"]):
                self._apply_gradients(rate_grads, band_results)
        return (sse * self.scale).detach(), bits.detach()

    def _apply_gradients(self, rate_grads: list[Tensor], band_results: list[_Band]) -> None:
        if self.grad_q:
            grad_canvas = rate_grads.pop(0)
        for p, g in zip(self.arm_params, rate_grads, strict=True):
            _accumulate(p, g)
        for k, p in enumerate(self.synthesis_params):
            total = None
            for b in band_results:
                g = b.params[k]
                if g is not None:
                    total = g.clone() if total is None else total.add_(g)
            if total is not None:
                _accumulate(p, total)
        if self.grad_dense is None:
            return
        w = self.width
        for (r0, r1, i0, i1), b in zip(self.bands, band_results, strict=True):
            top, bottom = b.halo
            if top.numel():
                self.grad_dense[:, i0 * w: r0 * w] += top
            if bottom.numel():
                self.grad_dense[:, r1 * w: i1 * w] += bottom
        assert self.dense is not None
        # through the upsampling (into its filters and the canvas leaf), then the quantiser
        self.dense.backward(self.grad_dense)
        if self.grad_q:
            assert self.leaf.grad is not None
            self.quantized.backward(self.leaf.grad + grad_canvas)


def _accumulate(p: Tensor, g: Tensor) -> None:
    if p.grad is None:
        p.grad = g.detach()
    else:
        p.grad += g

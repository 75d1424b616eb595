"""The per-image optimisation: warm-up over candidate initialisations, main
phase with annealed soft rounding, final phase on hard-rounded latents. It
returns the best state seen (by hard-rounded rate-distortion loss)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from torch.autograd.profiler import record_function

from ...quality_metrics import psnr_from_mse
from ..bitstream.canvas import Canvas
from ..networks.model import Architecture, MoricModel
from .coarse_start import (
    copy_local_networks,
    half_size,
    moved_latents,
    moved_networks,
    plan_coarse,
    size_name,
)
from .cpu_loss import PIECES, CpuLoss
from .latent_init import LatentInit, initial_latents
from .prior import apply_prior
from .rate_control import COARSE, LambdaController
from .recipe import Recipe
from .soap import Soap

# what the parameter-quantisation search costs, in training steps of the same
# encode (bench/results/moric-time/search/: 5.7 and 7.9 in two 60-step encodes)
SEARCH_STEPS = 10.0


@dataclass
class Budget:
    steps: int | None
    time_limit: float | None
    start: float
    reserve: float = 0.0  # seconds kept for quantising and coding after the optimisation

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def progress(self, step: int) -> float:
        p = 0.0
        if self.steps:
            p = step / self.steps
        if self.time_limit:
            p = max(p, self.elapsed() / max(self.time_limit - self.reserve, 1e-3))
        return p

    def plan_reserve(self, seconds_per_step: float) -> None:
        """Keep the parameter-quantisation search's time (at most a quarter of
        the limit) out of the time limit."""
        if self.time_limit:
            self.reserve = min(0.25 * self.time_limit, SEARCH_STEPS * seconds_per_step)


@dataclass
class Evaluation:
    loss: float
    mse: float
    bpp: float

    @property
    def psnr(self) -> float:
        return psnr_from_mse(self.mse, peak=1.0)


class _Stopped(Exception):
    """should_stop() asked to stop: unwind to the best state."""


class Optimisation:
    def __init__(self, target: Tensor, height: int, width: int, lmbda: float, recipe: Recipe,
                 budget: Budget, seed: int = 0,
                 progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, progress_every: int = 10,
                 two_core: bool = False, labels: np.ndarray | None = None,
                 object_only: bool = False,
                 prior: dict[str, Tensor] | dict[str, np.ndarray] | None = None,
                 latent_init: LatentInit | None = None,
                 controller: LambdaController | None = None,
                 parameter_probe: Callable[[MoricModel, float], None] | None = None):
        self.target = target  # (3, N) in [0, 1], on the training device
        self.height, self.width = height, width
        # pixels whose error counts (the rate is per such pixel too): all, or
        # the object's in single-object coding (target is then zero elsewhere)
        self.num_pixels = int((labels != 0).sum()) if object_only else height * width
        self.object_only = object_only
        # a target's controller steers λ through the main phase (`rate_control`)
        self.controller = controller
        # called with the model and λ before the controller's last update (`steer`)
        self.parameter_probe = parameter_probe
        self.lmbda = lmbda if controller is None else controller.lmbda
        self.recipe = recipe
        self.budget = budget
        self.seed = seed
        self.progress_cb = progress
        self.should_stop = should_stop
        self.progress_every = progress_every
        self.step = 0
        self.started = budget.start  # when this run's own steps began (after a coarse phase)
        # the budget's progress at this run's first step: a time limit's
        # includes the coarse phase's time; the controller counts from here
        self.origin = 0.0
        # the half-size run this one starts from (`coarse_phase`), once made
        self.coarse: MoricModel | None = None
        self.coarse_cost = 0  # its steps, in full-size steps (`CoarsePlan.cost`)
        self.scale = 1  # the original image's side over this run's (a coarse run: 2, 4..)
        self.last: Evaluation | None = None
        self.best: tuple[float, dict[str, Tensor]] | None = None
        self.interrupted = False
        self.current: MoricModel | None = None  # the model being trained
        # the decoded partition (H, W), or None for one region
        self.labels = labels
        regions = 1 if labels is None else int(labels.max()) + 1
        self.arch = Architecture(recipe.features, recipe.activation, regions)
        self.generator = torch.Generator(device=target.device).manual_seed(seed)
        self.prior = prior  # the networks' start (`prior`); None: a random one
        # the latents' start (`latent_init`), in quantisation steps; None: zeros
        # (not in single-object coding: the analysis never saw an image with
        # nothing outside an object)
        self.latent_start = None if latent_init is None or object_only else initial_latents(
            latent_init, target, height, width, lmbda, Canvas(height, width))
        # on a CPU, rate and distortion in cache-sized pieces, on two threads
        # with two_core (see cpu_loss); the caller sets one intra-op thread
        self.cpu_loss = CpuLoss(2 if two_core else 1) if target.device.type == "cpu" else None

    # -- building blocks -------------------------------------------------
    def new_candidate(self, index: int) -> tuple[MoricModel, torch.optim.Optimizer]:
        model = MoricModel(self.height, self.width, self.arch, self.recipe.latent_gain,
                           seed=self.seed * 1000 + index, labels=self.labels,
                           object_only=self.object_only)
        if self.prior is not None:
            apply_prior(model, self.prior)
        model = model.to(self.target.device)
        if self.latent_start is not None:
            with torch.no_grad():
                model.latents.values.copy_(self.latent_start / model.latents.gain)
        if self.coarse is not None:
            copy_local_networks(self.coarse, model)
            return model, self._optimizer(model)
        with torch.no_grad():  # start each region's output at its mean colour
            # (at the image's, where the latents start from the analysis: it
            # learned to draw around the mean colour of the whole image)
            flat = None if self.labels is None or self.latent_start is not None else \
                torch.from_numpy(self.labels.reshape(-1)).to(self.target.device)
            for r, lsn in enumerate(model.synthesis.lsns):
                pixels = self.target if flat is None else self.target[:, flat == r]
                lsn.b_res[2].copy_(pixels.mean(dim=1))
            if self.prior is None:
                model.arm.w_out.mul_(self.recipe.arm_output_init)
                for name, p in model.synthesis.named_parameters():
                    if name.split(".")[-1] in ("w1", "w2", "w_in") or "mod_w" in name:
                        p.mul_(self.recipe.synthesis_init_scale)
        return model, self._optimizer(model)

    def _optimizer(self, model: MoricModel) -> torch.optim.Optimizer:
        r = self.recipe
        groups = [{"params": [model.latents.values], "name": "latents", "betas": (0.9, 0.999),
                   "weight_decay": 0.0, "eps": r.latent_eps},
                  {"params": model.network_parameters(), "name": "networks",
                   "betas": r.network_betas, "weight_decay": r.weight_decay}]
        if r.optimizer == "soap":
            return Soap(groups, lr=r.lr)
        return torch.optim.Adam(groups, lr=r.lr)

    def loss(self, mse: Tensor, bits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        bpp = bits / self.num_pixels
        return mse + self.lmbda * bpp, mse, bpp

    def mse_and_bits(self, model: MoricModel, mode: str, temperature: float, noise: float,
                     backward: bool) -> tuple[Tensor, Tensor]:
        """Loss terms; with backward=True, the gradients of the loss too."""
        if self.cpu_loss is not None:
            with torch.set_grad_enabled(backward), record_function(PIECES["quantise"]):
                q = model.latents.quantized(mode, temperature, noise, self.generator)
            if mode == "hard":  # round() passes no gradient: skip that work
                q = q.detach()
            return self.cpu_loss(model, q, self.target, self.lmbda / self.num_pixels, backward)
        with torch.set_grad_enabled(backward):
            mse, bits = model(self.target, mode, temperature, noise, self.generator)
            if backward:
                self.loss(mse, bits)[0].backward()
        return mse.detach(), bits.detach()

    def evaluate(self, model: MoricModel) -> Evaluation:
        with torch.no_grad():
            loss, mse, bpp = self.loss(*self.mse_and_bits(model, "hard", 0.0, 0.0, False))
        return Evaluation(float(loss), float(mse), float(bpp))

    def train_step(self, model: MoricModel, optimizer: torch.optim.Optimizer, mode: str,
                   temperature: float, noise: float) -> Evaluation:
        if self.should_stop is not None and self.should_stop():
            raise _Stopped
        self.current = model
        optimizer.zero_grad(set_to_none=True)
        loss, mse, bpp = self.loss(*self.mse_and_bits(model, mode, temperature, noise, True))
        with record_function(PIECES["optimiser"]):
            torch.nn.utils.clip_grad_norm_(model.network_parameters(), self.recipe.grad_clip)
            optimizer.step()
        self.step += 1
        if self.step == 5:
            self.budget.plan_reserve((time.perf_counter() - self.started) / 5)
        self.last = Evaluation(loss.item(), mse.item(), bpp.item())
        if self.progress_cb is not None and self.step % self.progress_every == 0:
            self.report()
        return self.last

    def report(self) -> None:
        elapsed = self.budget.elapsed()
        p = max(self.budget.progress(self.step), 1e-9)
        total = self.budget.steps or max(self.step, round(self.step / p))
        assert self.last is not None
        state = {"step": self.step, "total": total, "bpp": self.last.bpp,
                 "psnr": self.last.psnr, "elapsed": elapsed,
                 "eta": max(0.0, elapsed / p - elapsed)}
        status = None if self.controller is None else self.controller.status()
        if status is not None:
            state["target"] = status
            # (progress, bpp, PSNR, λ after) of every update so far: how the run
            # was steered, for whoever studies the controller's spread
            state["steering"] = list(self.controller.history)
        self.progress_cb(state)

    def remember(self, model: MoricModel, evaluation: Evaluation) -> None:
        if self.best is None or evaluation.loss < self.best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best = (evaluation.loss, state)

    def own_progress(self, p: float) -> float:
        """The budget's progress `p` as this run's (after a coarse phase that a
        time limit counts): what the controller's tables are made in."""
        return (p - self.origin) / (1.0 - self.origin)

    def steer(self, model: MoricModel, progress: float) -> None:
        """A hard-rounded evaluation for the controller, which may move λ. The best
        state so far was scored with the old λ: forgotten when λ moves."""
        assert self.controller is not None
        e = self.evaluate(model)
        if self.parameter_probe is not None and self.controller.last_update(progress):
            self.parameter_probe(model, self.lmbda)
        lmbda = self.controller.update(e.bpp, e.psnr, progress)
        if lmbda != self.lmbda:
            self.lmbda, self.best = lmbda, None
        self.remember(model, Evaluation(e.mse + lmbda * e.bpp, e.mse, e.bpp))

    @staticmethod
    def set_lr(optimizer: torch.optim.Optimizer, networks: float, latents: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = latents if group["name"] == "latents" else networks

    @property
    def steps_done(self) -> int:
        """The steps made, a coarse phase's counted at their cost in full-size
        steps: what a file's header records (the budget, for a run that ran out)."""
        return self.step + self.coarse_cost

    # -- phases ------------------------------------------------------------
    def coarse_phase(self) -> None:
        """Spend the recipe's `coarse_share` of the budget on the image at half
        size, and start from what it learned (`coarse_start`). Only from a prior
        (its finest GMN column fills in) and a zero start of the latents."""
        r, budget = self.recipe, self.budget
        if self.prior is None or self.object_only or self.latent_start is not None:
            return
        plan = plan_coarse(budget.steps, budget.time_limit, r.coarse_share, self.height,
                           self.width)
        if plan is None:
            return
        halved = half_size(self.target, self.height, self.width, self.labels)
        if halved is None:
            return
        target, height, width, labels = halved
        two_core = self.cpu_loss is not None and self.cpu_loss.workers > 1

        def half_progress(state: dict) -> None:  # step 0 of the full run, and a phase
            assert self.progress_cb is not None
            # a deeper level's phase passes through as it names itself
            phase = state.get("phase") or \
                f"{size_name(run.scale)} {state['step']}/{state['total']}"
            self.progress_cb({"step": 0, "total": plan.full_steps, "bpp": state["bpp"],
                              "psnr": state["psnr"], "elapsed": self.budget.elapsed(),
                              "phase": phase})

        # the half run starts from a coarser one of its own while levels remain
        deeper = (replace(r, coarse_levels=r.coarse_levels - 1) if r.coarse_levels > 1
                  else replace(r, coarse_share=0.0))
        run = Optimisation(target, height, width, self.lmbda * r.coarse_lambda_scale, deeper,
                           Budget(plan.half_steps, plan.half_time, time.perf_counter()),
                           self.seed, half_progress if self.progress_cb else None,
                           self.should_stop, self.progress_every, two_core=two_core,
                           labels=labels, prior=self.prior)
        run.scale = 2 * self.scale
        half, _ = run.run()
        self.coarse_cost = plan.cost(run.steps_done)
        self.budget = replace(budget, steps=plan.full_steps or budget.steps)
        self.prior = moved_networks(half, self.prior)
        self.latent_start = moved_latents(half, self.height, self.width)
        self.coarse, self.started = half, time.perf_counter()
        self.origin = min(self.budget.progress(0), 0.9)
        if self.controller is not None:
            # a coarse-started run still moves far less than one from zero
            # latents: its own drift table
            self.controller.drift = COARSE
        if run.interrupted:
            raise _Stopped

    def warmup(self) -> tuple[MoricModel, torch.optim.Optimizer]:
        """Cool-Chic's competition: train every candidate briefly, keep the best
        `warmup_survivors`, train them again, keep the best (hard-rounded loss).
        From a prior every candidate would start alike: no competition."""
        r = self.recipe
        if self.prior is not None:
            return self.new_candidate(0)
        noise = r.warmup_noise(self.lmbda)
        count = r.warmup_candidates
        stages = [count] + ([r.warmup_survivors] if 1 < r.warmup_survivors < count else [])
        share = r.warmup_fraction / sum(stages)  # of the budget, per candidate and stage
        if self.budget.steps and share * self.budget.steps < 2:
            stages = [1]  # too small a budget to compare candidates
        candidates = [self.new_candidate(c) for c in range(stages[0])]
        done = 0
        for keep in stages:
            scored = []
            for model, optimizer in candidates[:keep]:
                done += 1
                while self.budget.progress(self.step) < share * done or self.step == 0:
                    self.train_step(model, optimizer, "softround", r.warmup_temperature, noise)
                scored.append((self.evaluate(model).loss, model, optimizer))
            scored.sort(key=lambda s: s[0])
            candidates = [(m, o) for _, m, o in scored]
        return candidates[0]

    def learning_rates(self, q: float) -> tuple[float, float]:
        """The networks' and the latents' rates at progress q of the main phase:
        cosine from each peak to lr_min, after a coarse start held down at first
        (`coarse_lr_ramp`)."""
        r = self.recipe
        decay = 0.5 * (1.0 + math.cos(math.pi * q))
        ramp = 1.0
        trained = self.coarse is not None or (r.ramp_from_prior and self.prior is not None)
        if trained and q < r.coarse_lr_ramp:
            # the optimisers' first steps move every value by about the rate,
            # whatever its gradient: a ramp spares what the coarse run learned
            ramp = max(q / r.coarse_lr_ramp, 0.02)
        networks = r.lr if r.network_lr is None else r.network_lr
        network_ramp = ramp if r.coarse_ramp_on in ("both", "networks") else 1.0
        latent_ramp = ramp if r.coarse_ramp_on in ("both", "latents") else 1.0
        return (r.lr_min + (networks - r.lr_min) * decay * network_ramp,
                r.lr_min + (r.lr - r.lr_min) * decay * latent_ramp)

    def main_phase(self, model: MoricModel, optimizer: torch.optim.Optimizer) -> None:
        r = self.recipe
        p0 = self.budget.progress(self.step)
        p1 = 1.0 - r.final_fraction
        while (p := self.budget.progress(self.step)) < p1:
            q = min(max((p - p0) / max(p1 - p0, 1e-9), 0.0), 1.0)
            self.set_lr(optimizer, *self.learning_rates(q))
            temperature = r.temperature[0] + q * (r.temperature[1] - r.temperature[0])
            noise = r.noise[0] + q * (r.noise[1] - r.noise[0])
            self.train_step(model, optimizer, "softround", temperature, noise)
            if self.controller is not None and self.controller.due(own := self.own_progress(p)):
                self.steer(model, own)
            elif self.step % r.eval_every == 0:
                self.remember(model, self.evaluate(model))
        self.remember(model, self.evaluate(model))

    def final_phase(self, model: MoricModel, optimizer: torch.optim.Optimizer) -> None:
        """Hard-rounded latents (no gradient reaches them): fine-tune the networks."""
        self.set_lr(optimizer, self.recipe.final_lr, 0.0)
        if self.best is not None:
            model.load_state_dict(self.best[1])
        while self.budget.progress(self.step) < 1.0:
            before = {k: v.detach().clone() for k, v in model.state_dict().items()}
            evaluation = self.train_step(model, optimizer, "hard", 0.0, 0.0)
            # the hard-rounded training loss is exact: it scores the state before the step
            if self.best is None or evaluation.loss < self.best[0]:
                self.best = (evaluation.loss, before)
        self.remember(model, self.evaluate(model))

    def run(self) -> tuple[MoricModel, Evaluation]:
        """Optimise; return the model holding the best state and its evaluation."""
        try:
            return self._run()
        finally:
            if self.cpu_loss is not None:
                self.cpu_loss.close()

    def _run(self) -> tuple[MoricModel, Evaluation]:
        try:
            self.coarse_phase()
            model, optimizer = self.warmup()
            self.main_phase(model, optimizer)
            self.final_phase(model, optimizer)
        except _Stopped:
            self.interrupted = True
            # stopped during the warm-up: keep the candidate being trained
            model = self.current if self.current is not None else self.new_candidate(0)[0]
            if self.best is None:
                self.remember(model, self.evaluate(model))
        assert self.best is not None
        model.load_state_dict(self.best[1])
        return model, self.evaluate(model)

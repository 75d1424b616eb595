"""SOAP (Vyas et al. 2024, "SOAP: improving and stabilizing Shampoo using
Adam"), the optimiser Cool-Chic 5 uses for its network weights.

Adam run in the eigenbasis of Shampoo's preconditioners: for a weight
matrix W (out x in) with gradient G, L and R are running averages of G G^T and
G^T G; every `precondition_every` steps their eigenvectors Q_L, Q_R are
refreshed and Adam's moments live in the rotated space Q_L^T G Q_R. Tensors of
more than two dimensions are seen as (out, rest); vectors get plain Adam. All
our networks' matrices are tiny (at most 25 x 25), so an eigendecomposition
costs microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class Soap(torch.optim.Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-2, betas: tuple[float, float] = (0.95,
                 0.95), eps: float = 1e-8, weight_decay: float = 0.0,
                 precondition_every: int = 10, max_dim: int = 256):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "precondition_every": precondition_every, "max_dim": max_dim}
        super().__init__(params, defaults)

    @staticmethod
    def _rotate(x: Tensor, q: list[Tensor | None], back: bool = False) -> Tensor:
        left, right = q
        if left is not None:
            x = (left @ x) if back else (left.T @ x)
        if right is not None:
            x = (x @ right.T) if back else (x @ right)
        return x

    @staticmethod
    def _eigenvectors(matrix: Tensor) -> Tensor:
        # float64 for a robust decomposition of near-singular averages
        m = matrix.double()
        _, vectors = torch.linalg.eigh(m + 1e-30 * torch.eye(m.shape[0], dtype=m.dtype,
                                                             device=m.device))
        return vectors.to(matrix.dtype)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch's signature
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.reshape(p.shape[0], -1) if p.dim() > 1 else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(grad)
                    state["exp_avg_sq"] = torch.zeros_like(grad)
                    if grad.dim() == 2:
                        state["gg"] = [torch.zeros(n, n, dtype=grad.dtype, device=grad.device)
                                       if n <= group["max_dim"] else None for n in grad.shape]
                    else:
                        state["gg"] = [None, None]
                    state["q"] = [None, None]
                state["step"] += 1
                step = state["step"]
                gg, q = state["gg"], state["q"]
                if step == 1 or step % group["precondition_every"] == 0:
                    # refresh the bases; keep the first moment, re-expressed
                    self._accumulate(gg, grad, beta2)
                    exp_avg = self._rotate(state["exp_avg"], q, back=True)
                    state["q"] = q = [None if m is None else self._eigenvectors(m) for m in gg]
                    state["exp_avg"] = self._rotate(exp_avg, q)
                else:
                    self._accumulate(gg, grad, beta2)
                projected = self._rotate(grad, q)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(projected, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(projected, projected, value=1.0 - beta2)
                update = exp_avg / (exp_avg_sq.sqrt() + group["eps"])
                update = self._rotate(update, q, back=True).reshape(p.shape)
                size = group["lr"] * (1.0 - beta2**step) ** 0.5 / (1.0 - beta1**step)
                p.add_(update, alpha=-size)
                if group["weight_decay"]:
                    p.mul_(1.0 - group["lr"] * group["weight_decay"])

    @staticmethod
    def _accumulate(gg: list[Tensor | None], grad: Tensor, beta: float) -> None:
        if grad.dim() != 2:
            return
        if gg[0] is not None:
            gg[0].lerp_(grad @ grad.T, 1.0 - beta)
        if gg[1] is not None:
            gg[1].lerp_(grad.T @ grad, 1.0 - beta)

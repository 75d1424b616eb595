"""The network prior: where an encode's ARM, upsampling, GMN and LSNs start.

The networks do nearly the same job on every image (predict a latent from its
neighbours, interpolate, map latents to colours), so starting them from
weights learned offline on other photographs (`prior_fit`, never Kodak)
saves the steps a random start spends relearning that job. Every parameter
is still optimised per image and sent, as its difference from the prior
(`bitstream.param_prior`), which is why a decoder needs the prior too.

A prior holds one LSN, which every region starts from; each region's output
bias is then set to its mean colour, as a random start's is. A prior fits one
architecture (GMN width, activation): `weights/moric/prior-{id}-f{F}-{activation}`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from ..file_format import PRIOR_ID
from ..networks.model import MoricModel


def _modules(model: MoricModel) -> dict[str, torch.nn.Module]:
    return {"arm": model.arm, "upsampling": model.upsampling, "gmn": model.synthesis.gmn,
            "lsn": model.synthesis.lsns[0]}


def network_state(model: MoricModel) -> dict[str, Tensor]:
    """The model's networks as a prior (LSN 0 stands for every region's)."""
    return {f"{prefix}.{name}": p.detach().clone()
            for prefix, module in _modules(model).items()
            for name, p in module.named_parameters()}


@torch.no_grad()
def apply_prior(model: MoricModel, prior: dict[str, Tensor] | dict[str, np.ndarray]) -> None:
    """Copy the prior into the model's networks, every LSN from the prior's one."""
    modules = _modules(model)
    for prefix, module in modules.items():
        targets = model.synthesis.lsns if prefix == "lsn" else [module]
        for target in targets:
            for name, p in target.named_parameters():
                value = prior.get(f"{prefix}.{name}")
                if value is None or value.shape != p.shape:
                    raise ValueError(f"the MoRIC prior does not fit this network ({prefix}.{name})")
                p.copy_(torch.as_tensor(value))


def save_prior(path: Path, state: dict[str, Tensor], features: int, activation: str,
               note: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().float() for k, v in state.items()}, str(path),
              metadata={"format": "moric-prior", "id": str(PRIOR_ID),
                        "features": str(features), "activation": activation, "note": note})

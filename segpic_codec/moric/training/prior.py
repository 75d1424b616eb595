"""The network prior: where an encode's ARM, upsampling, GMN and LSNs start.

The networks do nearly the same job on every image (predict a latent from its
neighbours, interpolate, map latents to colours), so starting them from
weights learned offline on other photographs (`prior_fit`, never Kodak)
saves the steps a random start spends relearning that job. Only the start
changes: every parameter is still optimised per image and sent in the file,
so a decoder needs no prior.

A prior holds one LSN, which every region starts from; each region's output
bias is then set to its mean colour, as a random start's is. A prior fits one
architecture (GMN width, activation): `weights/moric/prior-{id}-f{F}-{activation}`.
Files may code their parameters as differences from it (`param_prior`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ..bitstream.param_prior import load_prior_arrays
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
def apply_prior(model: MoricModel, prior: dict[str, Tensor]) -> None:
    """Copy the prior into the model's networks, every LSN from the prior's one."""
    modules = _modules(model)
    for prefix, module in modules.items():
        targets = model.synthesis.lsns if prefix == "lsn" else [module]
        for target in targets:
            for name, p in target.named_parameters():
                value = prior.get(f"{prefix}.{name}")
                if value is None or value.shape != p.shape:
                    raise ValueError(f"the MoRIC prior does not fit this network ({prefix}.{name})")
                p.copy_(value)


def save_prior(path: Path, state: dict[str, Tensor], features: int, activation: str,
               note: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().float() for k, v in state.items()}, str(path),
              metadata={"format": "moric-prior", "id": str(PRIOR_ID),
                        "features": str(features), "activation": activation, "note": note})


def load_prior(features: int, activation: str) -> dict[str, Tensor] | None:
    """The shipped prior for this architecture, or None where none is shipped
    (the encode then starts from a random initialisation)."""
    arrays = load_prior_arrays(features, activation)
    return None if arrays is None else {k: torch.from_numpy(v) for k, v in arrays.items()}

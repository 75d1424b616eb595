"""The state-dict layout of the authors' SegPIC (`compressai.models.sac.SegPIC` in
GityuxiLiu/SegPIC-for-Image-Compression) and how it maps onto ours.

No I/O here: `our_to_theirs` names the authors' key of every one of our keys,
`classify` says what becomes of every authors' key (mapped, an alias of a mapped
one, or dropped, with the reason) and `convert` turns a stripped authors' state
dict into ours. `authors_config` reads the widths off the shapes, `import_weights`
does the file handling.

Value conversions:
- GDN beta/gamma: CompressAI stores p with beta = max(p, sqrt(1e-6 + 2^-36))^2 - 2^-36
  and gamma = max(p, 2^-18)^2 - 2^-36; ours uses the pedestal 2^-18, so ours is
  sqrt(effective + 2^-18) (computed in float64). gamma is [out, in] in both.
- attention bias table: theirs is (K, heads), ours (heads, K): a transpose.
Every other tensor is copied as is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from ...errors import SegpicError

OUR_PEDESTAL = 2.0**-18  # layers.GDN
THEIR_PEDESTAL = 2.0**-36  # CompressAI's NonNegativeParametrizer: reparam_offset ** 2


class CheckpointError(SegpicError, ValueError):
    """An authors' checkpoint that cannot be read or does not fit the network."""


# (our key pattern, their key template); first match wins. \1.. are groups of ours.
_DOWN = {"conv": "conv_groups.0", "gdn": "conv_groups.1", "sal.net": "scales_bias"}
_UP = {"tconv": "conv_groups.0", "igdn": "conv_groups.1", "sal.net": "scales_bias"}
_RAT = {"ctl": "conv", "dkg": "k_sp_gen", "cag": "k_ch_gen", "merge": "conv_out"}
_RAT_OWNERS = {
    "rat_encoder": "dyn_encoder", "rat_decoder": "dyn_decoder",
    "hyperprior.rat_analysis": "dyn_enc_hyper", "hyperprior.rat_means": "dyn_dec_hyper_means",
    "hyperprior.rat_scales": "dyn_dec_hyper_scales",
}
_BLOCKS = {("g_a1", "0"): "basic_E.0", ("g_a1", "1"): "basic_E.1",
           ("g_a2", "0"): "basic_E.2", ("g_a2", "1"): "basic_E.3",
           ("g_s0", "1"): "basic_D.0", ("g_s0", "2"): "basic_D.1",
           ("g_s1", "1"): "basic_D.2", ("g_s1", "2"): "basic_D.3"}
_WAMS = {"g_a1.2", "g_a2.2", "g_s0.0", "g_s1.0"}
_DENSITIES = {"transform_prototypes": "entropy_bottleneck_b",
              "entropy_prototypes": "entropy_bottleneck_b2", "hyperprior": "entropy_bottleneck"}
_PROTO = {"transform_prototypes": ("g_ab", "g_sb"), "entropy_prototypes": ("g_ab2", "g_sb2")}
_CHARM = {"mean": "cc_mean_transforms", "scale": "cc_scale_transforms", "lrp": "lrp_transforms"}
_HS = {"h_s_means": "h_mean_s", "h_s_scales": "h_scale_s"}


def our_to_theirs(key: str) -> str:
    """The authors' key (without `module.`) holding the value of our `key`."""
    parts = key.split(".")
    head = ".".join(parts[:2])
    if (parts[0], parts[1]) in _BLOCKS:
        table = _DOWN if parts[0].startswith("g_a") else _UP
        rest = ".".join(parts[2:])
        for ours, theirs in table.items():
            if rest.startswith(ours + "."):
                return f"{_BLOCKS[parts[0], parts[1]]}.{theirs}{rest[len(ours):]}"
    if head in _WAMS:
        m = re.fullmatch(r"(trunk|gate)\.(\d+)\.(.*)", ".".join(parts[2:]))
        if m:
            branch, idx, rest = m.groups()
            prefix = f"{head}.conv_{'a' if branch == 'trunk' else 'b'}.{idx}"
            if branch == "gate" and idx == "0":
                name = "relative_position_bias_table" if rest == "rel_bias" else rest
                return f"{prefix}.attn.{name}"
            return f"{prefix}.{rest.replace('net.', 'conv.', 1)}"
    for ours, theirs in _RAT_OWNERS.items():
        if key.startswith(ours + "."):
            rest = key[len(ours) + 1:]
            first, _, tail = rest.partition(".")
            return f"{theirs}.{_RAT[first]}.{tail}" if first in _RAT else f"{theirs}.{rest}"
    m = re.fullmatch(r"(\w+)\.density\.(matrices|biases|factors)\.(\d+)", key)
    if m and m.group(1) in _DENSITIES:
        kind = {"matrices": "_matrix", "biases": "_bias", "factors": "_factor"}[m.group(2)]
        return f"{_DENSITIES[m.group(1)]}.{kind}{m.group(3)}"
    if parts[1:] == ["density", "quantiles"] and parts[0] in _DENSITIES:
        return f"{_DENSITIES[parts[0]]}.quantiles"
    if parts[0] in _PROTO and parts[1] in ("analysis", "synthesis"):
        return f"{_PROTO[parts[0]][parts[1] == 'synthesis']}.{'.'.join(parts[2:])}"
    if parts[0] == "hyperprior" and parts[1] == "h_a":
        return ".".join(parts[1:])
    if parts[0] == "hyperprior" and parts[1] in _HS:
        rest = ".".join(parts[2:]).replace(".conv.", ".0.")  # sub-pixel conv: Sequential[0]
        return f"{_HS[parts[1]]}.{rest}"
    m = re.fullmatch(r"charm\.(mean|scale|lrp)_transforms\.(.*)", key)
    if m:
        return f"{_CHARM[m.group(1)]}.{m.group(2)}"
    if parts[0] == "g_s1" and parts[1] == "3":
        return key
    raise CheckpointError(f"no authors' key is known for our key {key}")


# Authors' keys that hold no value of ours. Each entry: (pattern, reason).
DROPPED: tuple[tuple[str, str], ...] = (
    (r".*\.(beta|gamma)_reparam\.pedestal",
     "constant (2^-36) of CompressAI's GDN reparametrisation; used by the beta/gamma "
     "conversion, not stored (ours is the constant layers.GDN._pedestal)"),
    (r".*\.(beta|gamma)_reparam\.lower_bound\.bound",
     "constant lower bound of the GDN reparametrisation; used by the beta/gamma conversion"),
    (r".*\.attn\.relative_position_index",
     "constant index table of the attention bias; ours rebuilds it (rel_index)"),
    (r"entropy_bottleneck(_b2?)?\.target",
     "constant target of the quantiles' auxiliary loss; ours rebuilds it"),
    (r"(entropy_bottleneck(_b2?)?|gaussian_conditional)\.likelihood_lower_bound\.bound",
     "constant 1e-9 likelihood floor (entropy_models.LOG_LIKELIHOOD_BOUND)"),
    (r"entropy_bottleneck(_b2?)?\.(_offset|_quantized_cdf|_cdf_length)",
     "CDF tables derived by CompressAI's update() (empty in training checkpoints); our "
     "coder tabulates its own from the density"),
    (r"gaussian_conditional\.(_offset|_quantized_cdf|_cdf_length|scale_table)",
     "Gaussian CDF tables of CompressAI's coder; ours uses entropy_models.ScaleTable"),
    (r"gaussian_conditional\.(scale_bound|lower_bound_scale\.bound)",
     "constant 0.11 scale floor (entropy_models.SCALE_MIN)"),
)

# The authors register the first two blocks of g_a1, g_a2, g_s0, g_s1 twice: as
# basic_E.0-3 / basic_D.0-3 and inside the Sequentials (same tensors, shared storage).
_ALIASES = {f"{seq}.{idx}.": f"{block}." for (seq, idx), block in _BLOCKS.items()}
# CompressAI before 1.1 named the EntropyBottleneck parameters differently.
_OLD_EB = re.compile(r"(entropy_bottleneck(?:_b2?)?)\._(matrices|biases|factors)\.(\d+)")
_OLD_EB_NEW = {"matrices": "_matrix", "biases": "_bias", "factors": "_factor"}


def _renamed(key: str) -> str:
    """`module.` stripped and old EntropyBottleneck names updated."""
    key = key.removeprefix("module.")
    m = _OLD_EB.fullmatch(key)
    return f"{m.group(1)}.{_OLD_EB_NEW[m.group(2)]}{m.group(3)}" if m else key


def canonical(key: str) -> str:
    """Their key with `module.` stripped, old EntropyBottleneck names updated and
    aliases replaced by the registration that `our_to_theirs` uses."""
    key = _renamed(key)
    for alias, target in _ALIASES.items():
        if key.startswith(alias):
            return target + key[len(alias):]
    return key


def classify(key: str, mapped: set[str]) -> tuple[str, str]:
    """What becomes of one authors' key: ('mapped', canonical key), ('alias',
    canonical key: a second registration of that tensor), ('dropped', reason) or
    ('unknown', canonical key). `mapped`: the keys `our_to_theirs` produces."""
    name = canonical(key)
    known = name in mapped or any(re.fullmatch(p, name) for p, _ in DROPPED)
    if name != _renamed(key) and known:
        return "alias", name
    if name in mapped:
        return "mapped", name
    for pattern, reason in DROPPED:
        if re.fullmatch(pattern, name):
            return "dropped", reason
    return "unknown", name


def _constant(state: Mapping[str, torch.Tensor], key: str, default: float) -> float:
    """A one-element buffer's value (the default when the checkpoint lacks it)."""
    value = state.get(key)
    if value is None:
        return default
    if value.numel() != 1 or not math.isfinite(float(value.reshape(-1)[0])):
        raise CheckpointError(f"key {key} should hold one finite number")
    return float(value.reshape(-1)[0])


def _gdn_value(state: Mapping[str, torch.Tensor], key: str, value: torch.Tensor) -> torch.Tensor:
    """CompressAI's stored beta/gamma -> ours (same effective value)."""
    base, name = key.rsplit(".", 1)
    pedestal = _constant(state, f"{base}.{name}_reparam.pedestal", THEIR_PEDESTAL)
    bound = _constant(state, f"{base}.{name}_reparam.lower_bound.bound",
                      math.sqrt((1e-6 if name == "beta" else 0.0) + pedestal))
    p = value.detach().to(torch.float64)
    effective = p.clamp_min(bound) ** 2 - pedestal
    return torch.sqrt(effective + OUR_PEDESTAL)


def _is_gdn(our_key: str) -> bool:
    return our_key.rsplit(".", 1)[-1] in ("beta", "gamma")


def convert(state: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor],
            source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Their state dict (canonical keys) -> ours, checked key by key against the
    shapes of `template` (our model's state dict; meta tensors will do)."""
    out: dict[str, torch.Tensor] = {}
    for key, target in template.items():
        theirs = our_to_theirs(key)
        if theirs not in state:
            raise CheckpointError(f"{source}: key {theirs} is missing (needed for {key})")
        value = state[theirs]
        if key.endswith(".rel_bias"):
            value = value.t()
        if tuple(value.shape) != tuple(target.shape):
            shape = "x".join(map(str, value.shape)) or "scalar"
            want = "x".join(map(str, target.shape))
            raise CheckpointError(f"{source}: key {theirs} has shape {shape}, the network "
                                  f"needs {want}")
        if _is_gdn(key):
            value = _gdn_value(state, theirs, value)
        out[key] = value.detach().to(torch.float32).contiguous()
    return out

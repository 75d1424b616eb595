"""The widths of an authors' SegPIC checkpoint, read off its shapes.

Their class hard-codes its widths; a checkpoint of it (or of the reduced-width
test model, which only turns those literals into arguments) is the `segpic`
structure with the widths found here. Every width is read from several keys and
decided by majority, so that one misshapen tensor is reported by its own key
rather than blamed on the keys that agree with each other.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

import torch

from ..config import CONFIGS, ModelConfig
from .authors import CheckpointError

Source = tuple[str, int]  # (their canonical key, dimension)


def _shape_text(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def vote(state: Mapping[str, torch.Tensor], name: str, sources: list[Source]) -> int:
    """The size most `sources` agree on; a source that disagrees is an error."""
    seen = [(key, dim, int(state[key].shape[dim])) for key, dim in sources
            if key in state and state[key].dim() > dim]
    if not seen:
        raise CheckpointError(f"key {sources[0][0]} is missing; is this a SegPIC checkpoint?")
    value, _ = Counter(size for _, _, size in seen).most_common(1)[0]
    for key, dim, size in seen:
        if size != value:
            raise CheckpointError(f"key {key} has shape {_shape_text(state[key])}, its dim "
                                  f"{dim} should be {value} ({name}, as in the other keys)")
    return value


def _chain(prefix: str, n_in: Source, extra_out: list[list[Source]]) -> list[list[Source]]:
    """Sources of the widths of a 1x1-conv/GDN stack `prefix`.0,2,4 (GDN at 1, 3)."""
    widths: list[list[Source]] = [[n_in, (f"{prefix}.0.weight", 1)]]
    for i, conv in enumerate((0, 2, 4)):
        out = [(f"{prefix}.{conv}.weight", 0), (f"{prefix}.{conv}.bias", 0)]
        if conv < 4:
            out += [(f"{prefix}.{conv + 1}.beta", 0), (f"{prefix}.{conv + 1}.gamma", 0),
                    (f"{prefix}.{conv + 1}.gamma", 1), (f"{prefix}.{conv + 2}.weight", 1)]
        widths.append(out + extra_out[i])
    return widths


def _window(state: Mapping[str, torch.Tensor], tables: list[str]) -> int:
    size = vote(state, "attention bias table rows", [(t, 0) for t in tables])
    root = math.isqrt(size)
    if root * root != size or root % 2 == 0:
        raise CheckpointError(f"key {tables[0]} has {size} rows, not (2*window-1)^2; the table "
                              "is stored (K, heads)")
    return (root + 1) // 2


def config_from_state_dict(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """The `segpic` structure with the widths of this checkpoint (canonical keys)."""
    base = CONFIGS["segpic"]
    v = lambda name, sources: vote(state, name, sources)  # noqa: E731
    blocks = "conv_groups.0.weight"
    N = v("N", [(f"basic_E.0.{blocks}", 0), (f"basic_E.1.{blocks}", 0),
                (f"basic_E.1.{blocks}", 1), (f"basic_E.2.{blocks}", 1),
                (f"basic_E.2.{blocks}", 0), ("dyn_encoder.conv.0.weight", 0),
                ("dyn_decoder.conv.0.weight", 0), (f"basic_D.1.{blocks}", 1),
                (f"basic_D.2.{blocks}", 0), ("g_ab.0.weight", 1)])
    M = v("M", [(f"basic_E.3.{blocks}", 0), (f"basic_D.0.{blocks}", 0), ("h_a.0.weight", 0),
                ("h_a.0.weight", 1), ("h_mean_s.8.weight", 0), ("dyn_enc_hyper.conv.0.weight", 0),
                ("g_ab2.0.weight", 1)])
    Z = v("Z", [("h_a.8.weight", 0), ("h_mean_s.0.weight", 0), ("h_mean_s.0.weight", 1),
                ("h_scale_s.0.weight", 1), ("entropy_bottleneck.quantiles", 0)])
    hyper = tuple(v(f"hyper width {i}", [(f"h_a.{2 * i + 2}.weight", 0),
                                         (f"h_a.{2 * i + 4}.weight", 1)] + extra)
                  for i, extra in enumerate(([("h_mean_s.8.weight", 1)],
                                             [("h_mean_s.4.weight", 0)],
                                             [("h_mean_s.4.weight", 1)])))
    charm = tuple(v(f"ChARM width {j}", [(f"cc_mean_transforms.0.{2 * j}.weight", 0),
                                         (f"cc_mean_transforms.0.{2 * j + 2}.weight", 1),
                                         (f"cc_scale_transforms.0.{2 * j}.weight", 0),
                                         (f"lrp_transforms.0.{2 * j}.weight", 0)])
                  for j in range(4))
    indices = [re.match(r"(cc_mean_transforms|cc_scale_transforms|lrp_transforms)\.(\d+)\.", k)
               for k in state]
    num_slices = 1 + max((int(m.group(2)) for m in indices if m), default=-1)
    if num_slices != base.num_slices:
        raise CheckpointError(f"checkpoint has {num_slices} y slices, SegPIC has "
                              f"{base.num_slices}")
    last_in = v("ChARM input of the last slice", [("cc_mean_transforms.9.0.weight", 1),
                                                  ("cc_scale_transforms.9.0.weight", 1)])
    g_ab = _chain("g_ab", ("g_ab.0.weight", 1), [[], [], [("g_sb.0.weight", 1),
                                                         ("entropy_bottleneck_b.quantiles", 0)]])
    g_sb = _chain("g_sb", ("g_sb.0.weight", 1), [[], [], []])
    g_ab2 = _chain("g_ab2", ("g_ab2.0.weight", 1), [
        [("g_sb2.2.weight", 0), ("g_sb2.4.weight", 1)], [("g_sb2.0.weight", 0),
                                                         ("g_sb2.2.weight", 1)],
        [("g_sb2.0.weight", 1), ("entropy_bottleneck_b2.quantiles", 0)]])
    tables = [f"{m}.attn.relative_position_bias_table"
              for m in ("g_a1.2.conv_b.0", "g_s1.0.conv_b.0", "g_a2.2.conv_b.0", "g_s0.0.conv_b.0")]
    fields = dict(
        N=N, M=M, Z=Z, hyper_hidden=hyper, charm_hidden=charm,
        max_support_slices=(last_in - M) // (M // num_slices),
        proto_enc_channels=tuple(v(f"g_ab width {i}", s) for i, s in enumerate(g_ab)),
        proto_enc_synthesis=tuple(v(f"g_sb width {i}", s) for i, s in enumerate(g_sb)),
        proto_ent_channels=tuple(v(f"g_ab2 width {i}", s) for i, s in enumerate(g_ab2)),
        attn_heads=v("attention heads", [(t, 1) for t in tables]),
        attn_window_mid=_window(state, tables[:2]), attn_window_latent=_window(state, tables[2:]),
        decoder_out_channels=v("decoder output", [(f"basic_D.3.{blocks}", 1),
                                                  ("g_s1.3.weight", 1)]),
    )
    try:
        config = ModelConfig.from_dict({**base.to_dict(), **fields})
        config.validate()
    except ValueError as exc:
        raise CheckpointError(f"checkpoint widths do not make a SegPIC network: {exc}") from None
    return config

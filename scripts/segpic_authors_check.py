"""Compare our SegPIC with the authors' test vector, and count parameters.

    python scripts/segpic_authors_check.py [--ref $SEGPIC_SHARED/reference/segpic-authors]

Prints, for every tensor of inputs_outputs.safetensors, the max |ours - theirs|
(symbols: the number of differing entries) after importing checkpoint.pth.tar,
then the parameter counts per module of our `segpic` configuration next to the
authors' (from keys_full.tsv).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import load_file

from segpic_codec.segpic.config import get_config
from segpic_codec.segpic.networks.model import SegPIC
from segpic_codec.segpic.weights.authors import classify, our_to_theirs
from segpic_codec.segpic.weights.import_weights import import_checkpoint
from segpic_codec.segpic.weights.trace import trace
from segpic_codec.shared_data import shared_path

DEFAULT_REF = shared_path("reference", "segpic-authors", required=False)


def compare(ref: Path) -> None:
    torch.set_num_threads(1)
    state, config = import_checkpoint(ref / "checkpoint.pth.tar")
    model = SegPIC(config)
    model.load_state_dict(state, strict=True)
    model.eval()
    theirs = load_file(str(ref / "inputs_outputs.safetensors"))
    ours = trace(model, theirs["x"], int(theirs["grid"][0]))
    print(f"test checkpoint: {sum(p.numel() for p in model.parameters()):,} parameters")
    for name, value in theirs.items():
        if name not in ours:
            continue
        if value.dtype == torch.int32:
            print(f"  {name:20s} {int((ours[name] != value).sum())} differing symbols")
        else:
            diff = (ours[name].double() - value.double()).abs().max().item()
            print(f"  {name:20s} max |diff| {diff:.2e}")
    streams, x_hat = model.compress(theirs["x"], 0.0, 4)
    diff = (x_hat - theirs["x_hat"].double()).abs().max().item()
    print(f"  bitstream path x_hat max |diff| {diff:.2e}; stream bytes p' "
          f"{len(streams.prototype_streams[0])}, p {len(streams.prototype_streams[1])}, "
          f"z {len(streams.z_stream)}, y {sum(len(s) for s in streams.y_streams)}")


def count(ref: Path) -> None:
    with torch.device("meta"):
        model = SegPIC(get_config("segpic"))
    template = model.state_dict()
    owner = {our_to_theirs(k): k.split(".")[0] for k in template}
    theirs: dict[str, int] = defaultdict(int)
    for row in csv.DictReader(open(ref / "keys_full.tsv"), delimiter="\t"):
        kind, name = classify(row["key"], set(owner))
        if kind == "mapped":
            n = 1
            for d in row["shape_full"].split("x"):
                n *= int(d)
            theirs[owner[name]] += n
    print("segpic config, parameters per module (ours / authors' keys mapped to it):")
    for name, module in model.named_children():
        n = sum(p.numel() for p in module.parameters())
        print(f"  {name:22s} {n:>12,} {theirs.get(name, 0):>12,}")
    print(f"  {'total':22s} {sum(p.numel() for p in model.parameters()):>12,} "
          f"{sum(theirs.values()):>12,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, default=DEFAULT_REF)
    args = parser.parse_args()
    compare(args.ref)
    count(args.ref)

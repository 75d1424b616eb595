"""What range-coded parameters save on existing MoRIC files: each file's
exp-Golomb parameter stream re-coded with `param_stream` (the same quantised
values, each group's cheapest Laplace scale), the file rebuilt, decoded and
checked pixel for pixel against the original's decode. One JSON line per file.

    python scripts/moric_recode_parameters.py files/*.spic --out recoded.jsonl

The saving is at fixed quantisation: a new encode also picks its quantisation
steps with the new rate, so it saves at least about this much.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from segpic_codec import container
from segpic_codec.moric import codec, layout
from segpic_codec.moric.bitstream.param_stream import best_scale, encode_groups
from segpic_codec.moric.bitstream.parameters import parameter_group_values


def recode(data: bytes) -> tuple[bytes, dict]:
    frame = container.read_frame(data)
    streams = container.split_streams(data, frame)
    header = layout.unpack(frame.payload)
    if header.range_coded:
        raise SystemExit("already range coded")
    values = parameter_group_values(header, streams[0])
    keys, flats = list(values), list(values.values())
    groups = [(values, best_scale(values)[0]) for values in flats]
    coding = {g: (header.coding[g][0], scale) for g, (_, scale) in zip(keys, groups, strict=True)}
    new_header = dataclasses.replace(header, coding=coding, range_coded=True)
    new_streams = [encode_groups(groups)] + streams[1:]
    out = container.pack("moric", frame.width, frame.height, layout.pack(new_header),
                         new_streams)
    before = codec.decode(frame.payload, streams, frame.width, frame.height)
    after = codec.decode(layout.pack(new_header), new_streams, frame.width, frame.height)
    if not np.array_equal(before, after):
        raise SystemExit("the re-coded file decodes differently")
    return out, {"parameter_bytes": len(streams[0]),
                 "parameter_bytes_recoded": len(new_streams[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    for path in args.files:
        data = path.read_bytes()
        new, sizes = recode(data)
        frame = container.read_frame(data)
        pixels = frame.width * frame.height
        row = {"file": path.name, "file_bytes": len(data), "file_bytes_recoded": len(new),
               **sizes, "bpp": 8 * len(data) / pixels, "bpp_recoded": 8 * len(new) / pixels,
               "saved": round(1 - len(new) / len(data), 5)}
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

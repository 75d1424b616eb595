"""Where a MoRIC file's bits go: per (module, kind) group of the parameter
stream, its values, step and bits (information content under the group's
Laplace in a range-coded file, code lengths in an older exp-Golomb one), and
each share of the whole file. One JSON line per file.

    python scripts/moric_parameter_bits.py files/*.spic [--out bits.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segpic_codec import container
from segpic_codec.moric import layout
from segpic_codec.moric.bitstream.expgolomb import code_length
from segpic_codec.moric.bitstream.param_stream import information_bits
from segpic_codec.moric.bitstream.parameters import parameter_group_values


def parameter_bits(data: bytes) -> dict:
    frame = container.read_frame(data)
    streams = container.split_streams(data, frame)
    header = layout.unpack(frame.payload)
    file_bits = 8 * len(data)
    groups = {}
    for (module, kind), values in parameter_group_values(header, streams[0]).items():
        exponent, model = header.coding[(module, kind)]
        bits = (float(information_bits(values, model).sum()) if header.range_coded
                else float(code_length(values, model)))
        groups[f"{module}.{kind}"] = {"values": int(values.size), "step_exponent": exponent,
                                      "bits": round(bits, 1),
                                      "file_share": round(bits / file_bits, 5)}
    return {"file_bytes": len(data),
            "regions": header.regions, "range_coded": header.range_coded,
            "parameter_bytes": len(streams[0]),
            "parameter_share": round(8 * len(streams[0]) / file_bits, 5), "groups": groups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    for path in args.files:
        row = {"file": path.name, **parameter_bits(path.read_bytes())}
        line = json.dumps(row)
        print(line)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()

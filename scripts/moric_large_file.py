"""A large MoRIC file for decoder memory and speed checks, made without an
encode: a one-region file's header and networks, its latent grids resized
(nearest neighbour) to the new image size and range coded again with its ARM.
The file is valid (the decoder cannot tell it from an encoder's); its picture
is the source's, blocky.

    python scripts/moric_large_file.py SRC.spic OUT.spic --size 3840x2160 [--integer]

--integer sets the integer-synthesis flag (the decoder path of new files).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from segpic_codec import container
from segpic_codec.moric import layout
from segpic_codec.moric.bitstream.arm_integer import IntegerArm
from segpic_codec.moric.bitstream.canvas import Canvas
from segpic_codec.moric.bitstream.latent_stream import decode_latents, encode_latents
from segpic_codec.moric.bitstream.parameters import read_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--integer", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    data = args.src.read_bytes()
    frame = container.read_frame(data)
    streams = container.split_streams(data, frame)
    header = layout.unpack(frame.payload)
    if header.regions != 1:
        raise SystemExit("give a one-region file (its contours would not fit the new size)")
    arm = IntegerArm(read_parameters(header, streams[0])["arm"])
    source = Canvas(frame.height, frame.width)
    flat = decode_latents(arm, streams[header.latent_streams], source, header.latent_low,
                          header.latent_high).reshape(source.shape)
    target = Canvas(height, width)
    out = np.zeros(target.shape)
    for (rows, cols), (r_src, c_src) in zip(target.grid_slices(), source.grid_slices(),
                                            strict=True):
        grid = flat[r_src, c_src]
        r = np.arange(rows.stop - rows.start) * grid.shape[0] // (rows.stop - rows.start)
        c = np.arange(cols.stop - cols.start) * grid.shape[1] // (cols.stop - cols.start)
        out[rows, cols] = grid[r[:, None], c[None, :]]
    latents = encode_latents(arm, out.reshape(-1), target, header.latent_low,
                             header.latent_high)
    header = dataclasses.replace(header, integer_synthesis=args.integer or
                                 header.integer_synthesis)
    args.out.write_bytes(container.pack("moric", width, height, layout.pack(header),
                                        [streams[0], *latents]))


if __name__ == "__main__":
    main()

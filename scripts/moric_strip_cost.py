"""What independent strips of the finest latent grid would cost in rate (issue 25).

The latent decoder's loop runs once per wavefront: W + 3 H of them for the
finest grid (2,300 for a Kodak image), whatever the other grids do. Coding
that grid as K horizontal strips whose contexts stop at the strip's top row
would let the strips' wavefronts run side by side: about W + 3 H / K waves.
This measures the price on existing files without re-encoding them: their
latents and their integer ARM, every context neighbour above its strip's top
row read as zero (the margin's value), bits as the range coder spends them.
An encoder trained with the strips would adapt its latents to them, so this
is an upper bound.

    python scripts/moric_strip_cost.py FILE.spic ... [--strips 2 4 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from segpic_codec import container
from segpic_codec.moric import layout
from segpic_codec.moric.bitstream.arm_integer import IntegerArm
from segpic_codec.moric.bitstream.canvas import CONTEXT_OFFSETS, Canvas
from segpic_codec.moric.bitstream.pmf_table import build_table, window_starts, windows
from segpic_codec.moric.decoder.decode import decode_symbols


def latent_bits(arm: IntegerArm, flat: np.ndarray, canvas: Canvas, low: int, high: int,
                strips: int) -> float:
    """Bits of every latent, the finest grid's contexts cut into `strips` strips."""
    table = windows(build_table(high - low + 1))
    cols = canvas.shape[1]
    positions = canvas.latent_index
    contexts = flat[positions[:, None] + canvas.offsets[None, :]]
    finest = canvas.grid_of_latent == 0
    rows = canvas.sizes[0][0]
    row = positions // cols - canvas.origins[0][0]
    strip_rows = -(-rows // strips)
    top = (row // strip_rows) * strip_rows
    for j, (dr, _) in enumerate(CONTEXT_OFFSETS):
        contexts[finest & (row + dr < top), j] = 0
    mean, log_scale = arm(contexts)
    probs = table[window_starts(mean, log_scale, low, high)]
    symbols = flat[positions].astype(np.int64) - low
    return float(-np.log2(probs[np.arange(positions.size), symbols]
                          / probs.sum(axis=1)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--strips", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
    print("| file | latent bytes | " + " | ".join(f"{k} strips" for k in args.strips) + " |")
    print("|---|--:|" + "--:|" * len(args.strips))
    for path in args.files:
        data = path.read_bytes()
        frame = container.read_frame(data)
        header = layout.unpack(frame.payload)
        _, integers, flat = decode_symbols(header, container.split_streams(data, frame),
                                           frame.width, frame.height)
        canvas = Canvas(frame.height, frame.width)
        arm = IntegerArm(integers["arm"])
        low, high = header.latent_low, header.latent_high
        whole = latent_bits(arm, flat, canvas, low, high, 1)
        costs = [100 * (latent_bits(arm, flat, canvas, low, high, k) / whole - 1)
                 for k in args.strips]
        print(f"| {path.name} | {whole / 8:,.0f} | "
              + " | ".join(f"{c:+.2f} %" for c in costs) + " |", flush=True)


if __name__ == "__main__":
    main()

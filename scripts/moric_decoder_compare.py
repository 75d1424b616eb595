"""MoRIC's numpy decoder against the PyTorch decoder it replaced, on existing
files: per file, the pixels where the numpy float path (what files without
the integer-synthesis flag decode with) differs from PyTorch's float32
synthesis, and the PSNR against the original of PyTorch float, numpy float and
numpy integer synthesis (the same file with the flag set). One JSON line per
file, then a summary line.

    python scripts/moric_decoder_compare.py bench/results/*/files/*.spic \
        [--originals ../shared/data/kodak] [--out compare.jsonl]

The original of `kodim05-q2.5-440-auto.spic` is `kodim05.png` (the name up to
its first dash). Needs torch (the reference).

    python scripts/moric_decoder_compare.py FILES... --integer-copies DIR

writes each file with the integer-synthesis flag set to DIR instead (the same
parameters and latents: what the encoder of today would have written, short
of its reconstruction, which the integer decoder computes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segpic_codec import container
from segpic_codec.moric import layout
from segpic_codec.moric.bitstream.param_quant import load_parameters
from segpic_codec.moric.decoder.decode import decode_symbols, reconstruct
from segpic_codec.moric.networks.model import Architecture, MoricModel


@torch.no_grad()
def torch_pixels(header: layout.Header, integers: dict, flat: np.ndarray,
                 labels: np.ndarray) -> np.ndarray:
    """The PyTorch decoder's float path, as `codec._reconstruct` ran it."""
    height, width = labels.shape
    arch = Architecture(header.features, header.activation, header.regions)
    model = MoricModel(height, width, arch, labels=labels if header.regions > 1 else None,
                       object_only=header.object_only)
    load_parameters(model.sent_modules(), integers)
    q = torch.from_numpy(flat).to(torch.float32).reshape(model.canvas.shape)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        only = model.regions.only if header.object_only else None
        image = model.decode_latents(q, only)
    finally:
        torch.set_num_threads(previous)
    image = torch.round(torch.nan_to_num(image, nan=0.0).clamp(0.0, 1.0) * 255.0)
    return image.to(torch.uint8).reshape(3, height, width).permute(1, 2, 0).numpy()


def psnr(pixels: np.ndarray, original: np.ndarray | None) -> float | None:
    if original is None:
        return None
    mse = float(np.mean((pixels.astype(np.float64) - original) ** 2))
    return 10 * math.log10(255.0**2 / mse) if mse else math.inf


def compare(path: Path, originals: Path) -> dict:
    data = path.read_bytes()
    frame = container.read_frame(data)
    streams = container.split_streams(data, frame)
    header = layout.unpack(frame.payload)
    width, height = frame.width, frame.height
    labels, integers, flat = decode_symbols(header, streams, width, height)
    only = set(range(1, header.regions)) if header.object_only else None
    floating = dataclasses.replace(header, integer_synthesis=False)
    exact = dataclasses.replace(header, integer_synthesis=True)
    numpy_float = reconstruct(floating, integers, flat, labels, only)
    numpy_integer = reconstruct(exact, integers, flat, labels, only)
    reference = torch_pixels(floating, integers, flat, labels)
    source = originals / f"{path.name.split('-')[0]}.png"
    original = np.asarray(Image.open(source).convert("RGB"), np.float64) \
        if source.is_file() else None
    diff = np.abs(numpy_float.astype(np.int64) - reference)
    return {"file": str(path), "flag": header.integer_synthesis,
            "float_pixels_differing": int((diff > 0).any(axis=2).sum()),
            "float_values_differing": int((diff > 0).sum()), "float_max_diff": int(diff.max()),
            "psnr_torch_float": psnr(reference, original),
            "psnr_numpy_float": psnr(numpy_float, original),
            "psnr_integer": psnr(numpy_integer, original)}


def write_integer_copy(path: Path, out: Path) -> None:
    data = path.read_bytes()
    frame = container.read_frame(data)
    header = dataclasses.replace(layout.unpack(frame.payload), integer_synthesis=True)
    out.write_bytes(container.pack("moric", frame.width, frame.height, layout.pack(header),
                                   container.split_streams(data, frame)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--originals", type=Path, default=Path("../shared/data/kodak"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--integer-copies", type=Path, metavar="DIR")
    args = parser.parse_args()
    if args.integer_copies:
        args.integer_copies.mkdir(parents=True, exist_ok=True)
        for path in args.files:
            write_integer_copy(path, args.integer_copies / f"{path.stem}-integer.spic")
        return
    rows = []
    for path in args.files:
        rows.append(compare(path, args.originals))
        print(json.dumps(rows[-1]), flush=True)
    cost = [r["psnr_integer"] - r["psnr_numpy_float"] for r in rows
            if r["psnr_integer"] is not None]
    summary = {"files": len(rows),
               "float_pixels_differing": sum(r["float_pixels_differing"] for r in rows),
               "float_max_diff": max(r["float_max_diff"] for r in rows),
               "integer_minus_float_psnr_db": {"mean": float(np.mean(cost)) if cost else None,
                                               "min": min(cost, default=None),
                                               "max": max(cost, default=None)}}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows + [summary]))


if __name__ == "__main__":
    main()

"""What `segpic info` shows per region of a MoRIC file, without torch: its
pixels, its contour chains and their bits, and the bits of its LSN in the
parameter stream.

The parameter stream is a sequence of exp-Golomb values grouped by (module,
kind) (`param_quant`); the counts below follow the networks' shapes
(`tests/test_moric_regions.py` checks them against the modules). The LSNs'
values come region after region within each group, so each region's share
of the stream is exact. Latents are shared by all regions (the GMN is
global), except in an object-only file where they all serve the object.
"""

from __future__ import annotations

import numpy as np

from .canvas import CONTEXT_OFFSETS, NUM_GRIDS
from .expgolomb import BitReader
from .layout import KINDS, MODULES, Header

ARM_WIDTH = 16
LSN_WEIGHTS = (6, 27)  # w_in (3 x 2), w_res (3 x 3 x 3)
LSN_BIASES = (3, 9)  # b_in, b_res


def parameter_counts(features: int, regions: int) -> dict[tuple[str, str], list[int]]:
    """(module, kind) -> sizes of its parameters, in stream order."""
    n, w, f = len(CONTEXT_OFFSETS), ARM_WIDTH, features
    return {
        ("arm", "weight"): [w * n, w * w, 2 * w, 2 * n],
        ("arm", "bias"): [w, w, 2],
        ("upsampling", "weight"): [4 * (NUM_GRIDS - 1)],
        ("upsampling", "bias"): [],
        ("gmn", "weight"): [f * 7, 3 * f, 81, 81] + [3 * (3 + f + 3 * (k + 1)) for k in range(3)],
        ("gmn", "bias"): [f, 3, 3, 3, 3, 3, 3],
        ("lsn", "weight"): list(LSN_WEIGHTS) * regions,
        ("lsn", "bias"): list(LSN_BIASES) * regions,
    }


def lsn_bits(header: Header, parameters: bytes) -> list[int]:
    """Bits of each region's LSN in the parameter stream."""
    reader = BitReader(parameters)
    counts = parameter_counts(header.features, header.regions)
    bits = [0] * header.regions
    position = 0
    for module in MODULES:
        for kind in KINDS:
            order = header.coding[(module, kind)][1]
            sizes = counts[(module, kind)]
            per_region = len(sizes) // header.regions if module == "lsn" else 0
            for i, size in enumerate(sizes):
                reader.read_signed(size, order)
                if module == "lsn":
                    bits[i // per_region] += reader.position - position
                position = reader.position
    return bits


def describe_regions(header: Header, streams: list[bytes], width: int, height: int
                     ) -> list[dict]:
    """One dict per region: pixels, share, contour chains and bits, LSN bits."""
    from .contours import decode_partition

    if header.regions == 1:
        labels = np.zeros((height, width), dtype=np.int32)
        chains = {0: (0, 0.0)}
    else:
        stats: list[tuple[int, float]] = []
        labels = decode_partition(streams[1], height, width, header.regions, stats=stats)
        chains = {r: (sum(1 for label, _ in stats if label == r),
                      sum(b for label, b in stats if label == r))
                  for r in range(header.regions)}
    pixels = np.bincount(labels.ravel(), minlength=header.regions)
    lsn = lsn_bits(header, streams[0])
    out = []
    for r in range(header.regions):
        coded = not (header.object_only and r == 0)
        out.append({"region": r, "pixels": int(pixels[r]),
                    "share": round(float(pixels[r]) / (width * height), 4),
                    "coded": coded, "contour_chains": chains.get(r, (0, 0.0))[0],
                    "contour_bits": round(float(chains.get(r, (0, 0.0))[1]), 1),
                    "lsn_bits": lsn[r]})
    return out

"""What `segpic info` shows per region of a MoRIC file, without torch: its
pixels, its contour chains and their bits, the bits of its LSN in the
parameter stream, and its share of the latent bits.

The parameter stream holds the values grouped by (module, kind), range coded
(`param_stream`) or, in older files, exp-Golomb coded (`param_quant`), in
the order and shapes of `parameters`. The LSNs'
values come region after region within each group, so each region's share
of the stream is exact. The latents are shared (the GMN is global): each
latent's information content (under the decoder's integer ARM) is split
among the regions in proportion to their pixels in the block it sits on
(2**g x 2**g pixels for grid g), which is where its upsampled value weighs
most. In an object-only file all of them serve the object.
"""

from __future__ import annotations

import numpy as np

from ..file_format import Header
from .arm_integer import IntegerArm
from .canvas import Canvas
from .expgolomb import code_length
from .latent_stream import decode_latents, latent_bits
from .param_stream import information_bits
from .parameters import parameter_counts, parameter_group_values, read_parameters
from .roi import kept_latents


def lsn_bits_and_arm(header: Header, parameters: bytes
                    ) -> tuple[list[float], dict[str, tuple[np.ndarray, int]]]:
    """(bits of each region's LSN in the parameter stream, the ARM's integer
    parameters for `IntegerArm`). In a range-coded stream a value's bits are
    its information content under its group's Laplace; in an exp-Golomb one,
    its code's length."""
    counts = parameter_counts(header.features, header.regions)
    bits = [0.0] * header.regions
    for (module, kind), flat in parameter_group_values(header, parameters).items():
        exponent, model = header.coding[(module, kind)]
        sizes = counts[(module, kind)]
        per_region = len(sizes) // header.regions if module == "lsn" else 0
        # per value: a Laplace's bits depend on the whole group (its largest value)
        value_bits = information_bits(flat, model) if header.range_coded else None
        start = 0
        for i, size in enumerate(sizes):
            values = flat[start:start + size]
            if module == "lsn":
                bits[i // per_region] += (float(value_bits[start:start + size].sum())
                                          if value_bits is not None
                                          else code_length(values, model))
            start += size
    # the ARM as the decoder reads it (a prior-coded stream holds differences)
    return bits, read_parameters(header, parameters)["arm"]


def latent_bits_by_region(header: Header, streams: list[bytes], labels: np.ndarray,
                          arm: dict[str, tuple[np.ndarray, int]]) -> np.ndarray:
    """(regions,) latent bits attributed to each region (decodes the latents)."""
    height, width = labels.shape
    regions = header.regions
    canvas = Canvas(height, width)
    keep = kept_latents(labels != 0, canvas) if header.object_only else None
    integer_arm = IntegerArm(arm)
    low, high = header.latent_low, header.latent_high
    flat = decode_latents(integer_arm, streams[header.latent_streams], canvas, low, high, keep)
    bits = latent_bits(integer_arm, flat, canvas, low, high, keep)
    coded = np.array([not (header.object_only and r == 0) for r in range(regions)])
    out = np.zeros(regions)
    start = 0
    for g, (rows, cols) in enumerate(canvas.sizes):
        n = rows * cols
        block = (np.arange(height)[:, None] >> g) * cols + (np.arange(width)[None, :] >> g)
        pixels = np.bincount((block * regions + labels).ravel(),
                             minlength=n * regions).reshape(n, regions).astype(np.float64)
        pixels[:, ~coded] = 0.0
        pixels[pixels.sum(axis=1) == 0] = coded  # a block of uncoded pixels only
        out += (bits[start:start + n, None] * pixels / pixels.sum(axis=1, keepdims=True)).sum(0)
        start += n
    return out


def describe_regions(header: Header, streams: list[bytes], width: int, height: int,
                     latents: bool = False) -> list[dict]:
    """One dict per region: pixels, share, contour chains and bits, LSN bits,
    and with `latents` its latent bits (decoding the latents takes about a
    second for a Kodak image)."""
    from ..contours.stream import decode_partition

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
    lsn, arm = lsn_bits_and_arm(header, streams[0])
    shares = latent_bits_by_region(header, streams, labels, arm) if latents else None
    out = []
    for r in range(header.regions):
        coded = not (header.object_only and r == 0)
        out.append({"region": r, "pixels": int(pixels[r]),
                    "share": round(float(pixels[r]) / (width * height), 4),
                    "coded": coded, "contour_chains": chains.get(r, (0, 0.0))[0],
                    "contour_bits": round(float(chains.get(r, (0, 0.0))[1]), 1),
                    "lsn_bits": round(lsn[r], 1)})
        if shares is not None:
            out[-1]["latent_bits"] = round(float(shares[r]), 1)
    return out

"""MoRIC's decoder (numpy and constriction, no torch): payload + streams ->
pixels.

    header -> contours (region labels) -> parameters (integers) -> latents
    (integer ARM, range decoding) -> upsampling -> synthesis -> pixels

Files with the header's integer-synthesis flag run the upsampling and the
synthesis in exact fixed point (`layers.IntegerArithmetic`): the same pixels on
every machine, and the encoder's reconstruction is computed here too
(`reconstruct`). Files written before it run the float32 path they were made
with (`layers.FloatArithmetic`); docs/moric.md states how its pixels compare
with the PyTorch decoder that wrote them.
"""

from __future__ import annotations

import numpy as np

from ...limits import MAX_DIMENSION, max_pixels
from .. import layout
from ..bitstream.arm_integer import IntegerArm
from ..bitstream.canvas import Canvas, grid_sizes
from ..bitstream.latent_stream import decode_latents
from ..bitstream.parameters import ModuleIntegers, read_parameters
from ..bitstream.roi import kept_latents
from ..errors import MoricArgumentError, MoricFormatError
from ..file_format import NUM_GRIDS, Header
from .blas import one_blas_thread
from .reconstruction import Reconstruction

MAX_PARAMETER_BYTES = 1 << 16


def decode(payload: bytes, streams: list[bytes], width: int, height: int,
           regions: set[int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 pixels of a MoRIC payload and its streams; with
    `regions` (layered decoding), (H, W, 4) RGBA holding only those regions
    (alpha 0 elsewhere), computed with less synthesis work. A single-object
    file always decodes to RGBA (its object only)."""
    if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1 \
            or width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > max_pixels():
        raise MoricFormatError(f"bad MoRIC image size {width}x{height}")
    header = layout.unpack(payload)
    if not isinstance(streams, (list, tuple)) or len(streams) != header.num_streams:
        raise MoricFormatError(f"corrupt MoRIC file ({len(streams)} streams, "
                               f"expected {header.num_streams})")
    if not all(isinstance(s, (bytes, bytearray, memoryview)) for s in streams):
        raise MoricFormatError("MoRIC streams must be bytes")
    streams = [bytes(s) for s in streams]
    if regions is not None:
        regions = set(regions)
        first = 1 if header.object_only else 0  # region 0 of an object-only file is empty
        bad = sorted(r for r in regions
                     if not (isinstance(r, int) and first <= r < header.regions))
        if bad or not regions:
            raise MoricArgumentError(f"the file has region(s) {first}.."
                                     f"{header.regions - 1}; cannot decode region(s) "
                                     f"{', '.join(map(str, bad)) or '(none)'}")
    elif header.object_only:
        regions = set(range(1, header.regions))
    with one_blas_thread():  # the ARM's and the synthesis' thin products
        return _decode(header, streams, width, height, regions)


def _check_stream_sizes(streams: list[bytes], width: int, height: int) -> None:
    """Reject streams longer than any encoder writes, before parsing them: the
    parameters take ~2 kB (at most 96 bits per value exp-Golomb coded, 24 range
    coded), a latent at most 24 bits (constriction's smallest probability is
    2**-24)."""
    if len(streams[0]) > MAX_PARAMETER_BYTES:
        raise MoricFormatError(f"corrupt MoRIC file ({len(streams[0])}-byte parameter stream)")
    if len(streams) > 1 + NUM_GRIDS and len(streams[1]) > 4 * width * height + 64:
        raise MoricFormatError(f"corrupt MoRIC file ({len(streams[1])}-byte contour stream)")
    latents = streams[len(streams) - NUM_GRIDS:]
    for i, (rows, cols) in enumerate(grid_sizes(height, width)):
        if len(latents[i]) > 3 * rows * cols + 64:
            raise MoricFormatError(f"corrupt MoRIC file (latent stream {i} too long)")


def region_labels(header: Header, streams: list[bytes], width: int, height: int
                  ) -> np.ndarray:
    """(H, W) region of each pixel, from the contour stream (zeros for one region)."""
    if header.regions == 1:
        return np.zeros((height, width), dtype=np.int32)
    from ..contours.stream import decode_partition

    labels = decode_partition(streams[1], height, width, header.regions)
    if int(labels.max()) + 1 != header.regions:
        raise MoricFormatError(f"corrupt MoRIC file (the contours hold "
                               f"{int(labels.max()) + 1} regions, the header "
                               f"{header.regions})")
    return labels


def decode_symbols(header: Header, streams: list[bytes], width: int, height: int
                   ) -> tuple[np.ndarray, dict[str, ModuleIntegers], np.ndarray]:
    """Everything a file codes, before upsampling and synthesis: (region labels,
    the networks' integer parameters, the latents as the flat canvas)."""
    labels = region_labels(header, streams, width, height)
    canvas = Canvas(height, width)
    keep = kept_latents(labels != 0, canvas) if header.object_only else None
    integers = read_parameters(header, streams[0])
    flat = decode_latents(IntegerArm(integers["arm"]), streams[header.latent_streams], canvas,
                          header.latent_low, header.latent_high, keep)
    return labels, integers, flat


def _decode(header: Header, streams: list[bytes], width: int, height: int,
            regions: set[int] | None) -> np.ndarray:
    _check_stream_sizes(streams, width, height)
    labels, integers, flat = decode_symbols(header, streams, width, height)
    pixels = reconstruct(header, integers, flat, labels, regions)
    return pixels if regions is None else with_alpha(pixels, labels, regions)


def reconstruct(header: Header, integers: dict[str, ModuleIntegers], flat_canvas: np.ndarray,
                labels: np.ndarray, only: set[int] | None = None) -> np.ndarray:
    """Integer latents (the flat canvas) -> (H, W, 3) uint8, in the arithmetic
    the header names. `only`: draw just these regions (other pixels are 0) and
    run the GMN only on the rows they span."""
    with one_blas_thread():
        return Reconstruction(header, integers, flat_canvas, labels, only).run()


def with_alpha(pixels: np.ndarray, labels: np.ndarray, regions: set[int]) -> np.ndarray:
    """RGBA: opaque on the pixels of `regions`, transparent elsewhere."""
    alpha = np.isin(labels, sorted(regions)).astype(np.uint8) * 255
    return np.dstack([pixels, alpha])

"""Region partitions for MoRIC: an integer label map (H, W) with labels 0..N-1,
every label used. Each region gets its own local synthesis network, and the
contours between regions are coded in the stream (`contours.stream`), so the
automatic partition prefers a few large, compact regions.

Two sources: `auto_partition` (unsupervised: SLIC superpixels merged by
colour and position) and `load_label_image` (any integer label image, e.g.
from SAM). Pure numpy + scikit-image.
"""

from __future__ import annotations

import heapq
import os

import numpy as np
from PIL import Image

from ..errors import MoricArgumentError
from ..file_format import MAX_CODED_REGIONS, MAX_CONTOUR_REGIONS

SLIC_MAX_PIXELS = 100_000  # SLIC runs on the image downscaled to at most this
SLIC_SEGMENTS = 96
SLIC_COMPACTNESS = 12.0
PIXEL_GRAPH_MAX = 4096  # images up to this many pixels merge single pixels
# Weight of the (normalised) region centroid against Lab colour in the merge
# cost: positions keep merged regions compact instead of scattering one colour.
POSITION_WEIGHT = 40.0
# Majority filter over (2 r + 1)^2 windows, applied twice, on the merged map:
# the superpixel boundaries are ragged at pixel scale, and on Kodak (N = 3)
# this cuts the contour bits by a quarter while moving under 1% of the pixels.
SMOOTH_RADIUS = 5
SMOOTH_PASSES = 2


class PartitionError(MoricArgumentError):
    """A label map or label image that is not a usable region partition."""


def check_partition(labels: np.ndarray, max_regions: int = MAX_CODED_REGIONS) -> int:
    """Validate a partition; returns its number of regions N."""
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.size == 0:
        raise PartitionError(f"a partition is a non-empty 2-D label map, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise PartitionError(f"a partition holds integer labels, got dtype {arr.dtype}")
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise PartitionError(f"partition labels must be >= 0, found {low}")
    if high >= max_regions:
        raise PartitionError(f"partition has labels up to {high}, at most {max_regions} "
                             "regions (labels 0..{}) allowed".format(max_regions - 1))
    counts = np.bincount(arr.ravel(), minlength=high + 1)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise PartitionError(f"partition label {int(empty[0])} is unused (labels must be "
                             f"0..{high}, each covering at least one pixel)")
    return high + 1


def relabel_first_appearance(values: np.ndarray) -> np.ndarray:
    """Distinct values (of a 2-D map, or colours of an (H, W, C) uint8 image)
    -> 0..N-1 in raster order of first appearance (int32)."""
    if values.ndim == 3:  # one integer key per colour
        channels = values.astype(np.int64)
        values = sum(channels[..., c] << (8 * c) for c in range(values.shape[2]))
    flat = values.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size, dtype=np.int32)
    return rank[inverse.reshape(-1)].reshape(values.shape[:2])


def load_label_image(path: str | os.PathLike, height: int, width: int,
                     max_regions: int = MAX_CODED_REGIONS) -> np.ndarray:
    """An integer label image (PNG, 8/16/32-bit grey or palette; RGB only with
    at most `max_regions` colours) as labels 0..N-1 in raster order of first
    appearance, checked against the image size."""
    try:
        image = Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # missing, not an image
        raise PartitionError(f"cannot read label image {os.fspath(path)!r}: {exc}") from None
    with image:
        if image.size != (width, height):
            raise PartitionError(f"label image {os.fspath(path)!r} is {image.size[0]}x"
                                 f"{image.size[1]}, the image is {width}x{height}")
        mode = image.mode
        try:
            if mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
                values = np.asarray(image).astype(np.int64)
            elif mode in ("RGB", "RGBA"):
                values = np.asarray(image)
            else:
                raise PartitionError(f"label image {os.fspath(path)!r} has mode {mode}: expected "
                                     "integer labels (8/16-bit grey or palette PNG)")
        except OSError as exc:  # truncated or corrupt pixel data
            raise PartitionError(f"cannot read label image {os.fspath(path)!r}: {exc}") from None
    labels = relabel_first_appearance(values)
    regions = int(labels.max()) + 1
    if regions > max_regions and values.ndim == 3:
        raise PartitionError(f"label image {os.fspath(path)!r} is a {mode} image with "
                             f"{regions} colours, not a label image (at most {max_regions} "
                             "regions)")
    if regions > max_regions:
        raise PartitionError(f"label image {os.fspath(path)!r} has {regions} labels, at most "
                             f"{max_regions} allowed")
    return labels


def load_object_mask(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """An object mask image (any mode; nonzero = the object, alpha for RGBA) as a
    bool (H, W) array, checked against the image size."""
    try:
        with Image.open(path) as image:
            if image.size != (width, height):
                raise PartitionError(f"object mask {os.fspath(path)!r} is {image.size[0]}x"
                                     f"{image.size[1]}, the image is {width}x{height}")
            band = image.getchannel("A") if image.mode in ("RGBA", "LA") else \
                image.convert("L") if image.mode not in ("I", "I;16", "F") else image
            return np.asarray(band) != 0
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PartitionError(f"cannot read object mask {os.fspath(path)!r}: {exc}") from None


def _blocks(height: int, width: int) -> np.ndarray:
    """Square superpixels, at most PIXEL_GRAPH_MAX of them (single pixels for small images)."""
    side = max(1, int(np.ceil(np.sqrt(height * width / PIXEL_GRAPH_MAX))))
    while -(-height // side) * -(-width // side) > PIXEL_GRAPH_MAX:
        side += 1
    rows = np.arange(height) // side
    cols = np.arange(width) // side
    return rows[:, None] * (int(cols[-1]) + 1) + cols[None, :]


def _superpixels(pixels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Connected superpixels of a working copy of the image: (superpixels
    (h, w) int64 numbered 0..S-1, working image (h, w, 3) float64, factor).
    SLIC on the image block-averaged by `factor` to at most SLIC_MAX_PIXELS;
    square blocks at full size for images that are small, thin, or where SLIC
    finds too few segments."""
    height, width = pixels.shape[:2]
    factor = max(1, int(np.ceil(np.sqrt(height * width / SLIC_MAX_PIXELS))))
    small_h, small_w = height // factor, width // factor
    if height * width > PIXEL_GRAPH_MAX and min(small_h, small_w) >= 8:
        block = pixels[:small_h * factor, :small_w * factor].astype(np.float64)
        small = block.reshape(small_h, factor, small_w, factor, 3).mean(axis=(1, 3))
        from skimage.segmentation import slic  # slow to import; the encoder's alone

        segments = slic(small / 255.0, n_segments=SLIC_SEGMENTS, compactness=SLIC_COMPACTNESS,
                        start_label=0, enforce_connectivity=True, channel_axis=-1)
        if segments.max() + 1 >= 2 * count:
            return segments.astype(np.int64), small, factor
    return _blocks(height, width), pixels.astype(np.float64), 1


def _upsample(labels: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Nearest upsampling by `factor`, the last rows/columns repeated to fill
    (height, width); keeps regions connected."""
    rows = np.minimum(np.arange(height) // factor, labels.shape[0] - 1)
    cols = np.minimum(np.arange(width) // factor, labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def _merge(segments: np.ndarray, pixels: np.ndarray, count: int) -> np.ndarray:
    """Greedy Ward merging of adjacent superpixels down to `count` regions
    (pixels: the working image, float RGB 0..255); returns the region of each
    superpixel."""
    from skimage.color import rgb2lab  # slow to import; the encoder's alone

    height, width = segments.shape
    nodes = int(segments.max()) + 1
    flat = segments.ravel()
    lab = rgb2lab(pixels / 255.0).reshape(-1, 3)
    scale = POSITION_WEIGHT / np.sqrt(height * width)
    ys, xs = np.divmod(np.arange(height * width), width)
    features = np.column_stack([lab, ys * scale, xs * scale])
    size = np.bincount(flat, minlength=nodes).astype(np.float64)
    mean = np.stack([np.bincount(flat, weights=f, minlength=nodes) for f in features.T], 1)
    mean /= size[:, None]
    pairs = np.concatenate([
        np.stack([segments[:, :-1].ravel(), segments[:, 1:].ravel()], 1),
        np.stack([segments[:-1, :].ravel(), segments[1:, :].ravel()], 1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    neighbours: list[set[int]] = [set() for _ in range(nodes)]
    for a, b in pairs.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    size_l, mean_l = size.tolist(), [m for m in mean]
    version = [0] * nodes

    def cost(a: int, b: int) -> float:
        d = mean_l[a] - mean_l[b]
        return size_l[a] * size_l[b] / (size_l[a] + size_l[b]) * float(d @ d)

    heap = [(cost(a, b), a, b, 0, 0) for a, b in pairs.tolist()]
    heapq.heapify(heap)
    parent = list(range(nodes))
    alive = nodes
    while alive > count and heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if va != version[a] or vb != version[b] or parent[a] != a or parent[b] != b:
            continue  # stale entry
        # merge b into a
        total = size_l[a] + size_l[b]
        mean_l[a] = (mean_l[a] * size_l[a] + mean_l[b] * size_l[b]) / total
        size_l[a] = total
        parent[b] = a
        version[a] += 1
        neighbours[a] = (neighbours[a] | neighbours[b]) - {a, b}
        for n in neighbours[b]:
            neighbours[n].discard(b)
            if n != a:
                neighbours[n].add(a)
        neighbours[b] = set()
        alive -= 1
        for n in neighbours[a]:
            lo, hi = min(a, n), max(a, n)
            heapq.heappush(heap, (cost(lo, hi), lo, hi, version[lo], version[hi]))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    return np.array([root(i) for i in range(nodes)], dtype=np.int64)


def _box_sum(mask: np.ndarray, radius: int) -> np.ndarray:
    """Count of True pixels in the (2 radius + 1)^2 window around each pixel (edges replicated)."""
    padded = np.pad(mask, radius, mode="edge").astype(np.int32)
    table = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    k = 2 * radius + 1
    return table[k:, k:] - table[:-k, k:] - table[k:, :-k] + table[:-k, :-k]


def _smooth(labels: np.ndarray, regions: int, radius: int) -> np.ndarray:
    """Majority-filtered labels, or the input if filtering would empty a region."""
    radius = min(radius, min(labels.shape) // 16)
    if radius < 1:
        return labels
    smoothed = labels
    for _ in range(SMOOTH_PASSES):
        votes = np.stack([_box_sum(smoothed == k, radius) for k in range(regions)])
        smoothed = votes.argmax(axis=0)
    if np.bincount(smoothed.ravel(), minlength=regions).all():
        return smoothed
    return labels


def auto_partition(pixels: np.ndarray, count: int = 3) -> np.ndarray:
    """Unsupervised partition of an RGB image (H, W, 3) uint8 into `count`
    regions (fewer when the image has fewer pixels), labels 0..N-1 in raster
    order of first appearance. Deterministic. Regions are merged from
    adjacent superpixels, so they are connected before the final boundary
    smoothing (which may split off a few small islands)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or pixels.size == 0:
        raise PartitionError(f"auto_partition takes an (H, W, 3) uint8 image, got "
                             f"{pixels.shape} {pixels.dtype}")
    if not 1 <= count <= MAX_CONTOUR_REGIONS:
        raise PartitionError(f"region count must be 1..{MAX_CONTOUR_REGIONS}, got {count}")
    height, width = pixels.shape[:2]
    if count == 1 or height * width == 1:
        return np.zeros((height, width), dtype=np.int32)
    segments, working, factor = _superpixels(pixels, count)
    region_of = _merge(segments, working, count)
    labels = relabel_first_appearance(region_of[segments])
    # smooth on the working copy (radius in full-size pixels), then upsample
    radius = -(-SMOOTH_RADIUS // factor)
    labels = _smooth(labels, int(labels.max()) + 1, radius)
    return relabel_first_appearance(_upsample(labels, factor, height, width))

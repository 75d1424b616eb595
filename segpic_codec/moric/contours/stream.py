"""The region partition in the bitstream: contour chains painted in order.

The decoder starts from a canvas filled with one "base" label and paints a
list of chains: each is a closed polygon filled (non-zero winding, exact
integer scanline) with its label. The chains are the outer boundaries of the
4-connected components of the partition, largest filled area first, so a
component inside another's hole is painted after it; components of the base
label that lie in no other component's hole are the canvas and cost nothing.

Each chain is coded one of two ways (a flag per chain):
  * crack (`crack`): the exact boundary along pixel edges; the
    partition comes back bit for bit;
  * C* (`cstar`): MoRIC's lossy polygonal chain. Its step length is
    chosen as in the paper: from 5 up until the chain costs at most 0.3 x 3
    bits per contour pixel, with optional dilation of the component (see
    MAX_DILATION).
mode "lossless" uses crack everywhere; "lossy" C* wherever a chain exists;
"auto" C* where it costs at most LOSSY_GAIN of the crack code. The encoder
returns the label map the decoder rebuilds (it decodes its own stream), and
falls back to crack chains if lossy polygons would leave a label empty.

Stream: whole 32-bit little-endian words.
    word 0: version (bits 0-3) = 1 | kind (4-7): 0 one region, 1 chains
            | regions N (8-15) | base label (16-23)
            | CRC-8 (24-31) of bytes 0-2 and of everything after word 0
    kind 0: nothing more (a one-region partition costs 4 bytes)
    kind 1: word 1 = chain count; then constriction range-coder words:
            per chain: label (uniform N), method (adaptive bit: 0 crack,
            1 C*), then the chain (`CrackCoder.write` / `CstarCoder.write`).
"""

from __future__ import annotations

import numpy as np

from ...limits import too_large
from ..errors import MoricArgumentError
from ..file_format import MAX_CODED_REGIONS, MAX_CONTOUR_REGIONS
from .crack import CrackCoder
from .cstar import GAMMA_BITS, MAX_STEP, CstarChain, CstarCoder, trace_chain
from .entropy import AdaptiveModel, ContourFormatError, Reader, Writer, crc8
from .geometry import (
    corners_of_turns,
    fill_polygon,
    label_components,
    padded_table,
    polygon_runs,
    trace_crack,
)
from .painting import RunCanvas
from .partition import check_partition

CONTOUR_STREAM_VERSION = 1
KIND_SINGLE, KIND_CHAINS = 0, 1
CRACK, CSTAR = 0, 1
INITIAL_STEP = 5  # the paper's starting step length
RATE_TARGET = 0.3  # paper: chain bits <= 0.3 x 3 bits x contour pixels
ERROR_PIXELS = 10  # paper: at most 10 component pixels outside the polygon
# The paper dilates a mask until its polygon leaves out at most ERROR_PIXELS
# of it. Between painted regions that trades pixels of one region for another:
# on 8 BSDS masks up to 3 dilations nearly tripled the mismatched pixels for
# 2% fewer bits, so it is off unless asked for (encode_partition(max_dilation=)).
MAX_DILATION = 0
LOSSY_GAIN = 0.75
MODES = ("auto", "lossless", "lossy")


# Contour work a stream may ask of the decoder, in "edges": one per crack edge
# or C* step, CHAIN_EDGES more per chain. Decoding is a Python loop over
# adaptive symbols (about 10-20 us each here), and adaptive models make long
# runs nearly free to code, so the bound cannot come from the stream's size: it
# is EDGES_PER_SIDE per row and column of the image, 3.5x the longest
# boundaries of the ground-truth masks in ../shared/data/train (18 per row and
# column). At 768x512 that is 82k edges: 80k of them decoded in 0.2 s here.
EDGES_PER_SIDE = 64
CHAIN_EDGES = 4  # a chain's fixed cost (the smallest crack chain has 4 edges)


def edge_budget(height: int, width: int) -> int:
    """Most crack edges plus C* steps (and CHAIN_EDGES per chain) in a stream;
    also at most the edges the image has (every pixel edge lies on at most two
    components' boundaries)."""
    return min(EDGES_PER_SIDE * (height + width + 2), 4 * (height + 1) * (width + 1) + 64)


def _rows_budget(height: int, width: int) -> int:
    """Most rows all the chains' fills may cross (`_rows_crossed`): a crack
    chain crosses one per vertical edge, a C* polygon about as many as the
    contour it follows (under a quarter of this on fragmented test maps)."""
    return 4 * (height + 1) * (width + 1) + 64


def _chain_edges(method: int, chain) -> int:  # noqa: ANN001 - a _Component or CstarChain
    return CHAIN_EDGES + (chain.turns.size if method == CRACK else len(chain.moves))


def _rows_crossed(ys: np.ndarray, height: int) -> int:
    """Pixel rows the polygon's edges cross within the image: the work and
    memory of its fill (`polygon_runs`) and of its runs on the canvas
    (`RunCanvas`), counted before they run, so that a hostile chain cannot make
    them huge (C* steps of up to 65 rows, back and forth). Neither depends on
    the chain's bounding box or area."""
    clipped = np.clip(ys, 0, height)
    return int(np.abs(clipped - np.roll(clipped, -1)).sum())


class _Component:
    """One 4-connected component: label, first pixel, crack boundary, fill."""

    def __init__(self, label: int, first: int, width: int, turns: np.ndarray,
                 ys: np.ndarray, xs: np.ndarray, fill: tuple[int, int, np.ndarray]) -> None:
        self.label, self.first = label, first
        self.turns, self.ys, self.xs, self.fill = turns, ys, xs, fill
        self.start = divmod(first, width)


def _analyse(labels: np.ndarray, mode: str) -> tuple[list[_Component], int]:
    """Components in painting order (largest filled area first) and the base label."""
    height, width = labels.shape
    comp, comp_label, first = label_components(labels)
    _refuse_early(labels, comp_label, mode)
    table = padded_table(comp, -1)
    depth = np.zeros((height, width), dtype=np.int32)
    components = []
    for cid in range(first.size):
        turns, ys, xs = trace_crack(table, cid, width, int(first[cid]))
        fill = fill_polygon(*corners_of_turns(int(ys[0]), int(xs[0]), turns.tolist()),
                            height, width)
        r0, c0, mask = fill
        depth[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]] += mask
        components.append(_Component(int(comp_label[cid]), int(first[cid]), width, turns, ys, xs,
                                     fill))
    # a component in nobody's hole has depth 1; its label may be the canvas
    top_level = depth.ravel()[first] == 1
    saved = np.zeros(int(labels.max()) + 1)  # boundary length the canvas saves, per label
    for c, top in zip(components, top_level, strict=True):
        if top:
            saved[c.label] += c.turns.size
    base = int(np.argmax(saved))
    order = sorted(range(len(components)),
                   key=lambda i: (-int(components[i].fill[2].sum()), components[i].first))
    painted = [components[i] for i in order if not (top_level[i] and components[i].label == base)]
    return painted, base


def _refuse_early(labels: np.ndarray, comp_label: np.ndarray, mode: str) -> None:
    """Refuse a partition that cannot fit the edge budget before tracing its
    components (which takes long on a noisy label map): every component but
    those of one label is painted, and a lossless chain walks every edge
    between two labels (a C* step covers at most MAX_STEP of them)."""
    height, width = labels.shape
    painted = comp_label.size - int(np.bincount(comp_label).max())
    between = int((labels[1:] != labels[:-1]).sum() + (labels[:, 1:] != labels[:, :-1]).sum())
    edges = CHAIN_EDGES * painted + between // (1 if mode == "lossless" else MAX_STEP)
    if edges > edge_budget(height, width):
        raise _too_long(f"at least {edges}", height, width)


def _too_long(edges: str, height: int, width: int) -> MoricArgumentError:
    return MoricArgumentError(
        f"the region boundaries are too long to code: {edges} contour edges where a "
        f"{width}x{height} image allows {edge_budget(height, width)} ({EDGES_PER_SIDE} per "
        f"row and column); use fewer or smoother regions")


def _dilate(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    wide = grown.copy()
    wide[:, 1:] |= grown[:, :-1]
    wide[:, :-1] |= grown[:, 1:]
    return wide


def _boundary_pixels(mask: np.ndarray) -> int:
    """Pixels of the mask with a 4-neighbour outside it (or outside the image)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return int((mask & ~interior).sum())


def _overlap(a: tuple[int, int, np.ndarray], b: tuple[int, int, np.ndarray]) -> int:
    """Pixels set in both of two masks placed at (row, col)."""
    (ra, ca, ma), (rb, cb, mb) = a, b
    r0, c0 = max(ra, rb), max(ca, cb)
    r1 = min(ra + ma.shape[0], rb + mb.shape[0])
    c1 = min(ca + ma.shape[1], cb + mb.shape[1])
    if r1 <= r0 or c1 <= c0:
        return 0
    return int((ma[r0 - ra:r1 - ra, c0 - ca:c1 - ca] & mb[r0 - rb:r1 - rb, c0 - cb:c1 - cb]).sum())


def _dilated_contour(c: _Component, dilation: int, height: int, width: int):
    """Crack contour (corner ys, xs) of the component's fill dilated `dilation` times."""
    r0, c0, mask = c.fill
    top, left = max(r0 - dilation, 0), max(c0 - dilation, 0)
    bottom = min(r0 + mask.shape[0] + dilation, height)
    right = min(c0 + mask.shape[1] + dilation, width)
    shape = np.zeros((bottom - top, right - left), dtype=bool)
    shape[r0 - top:r0 - top + mask.shape[0], c0 - left:c0 - left + mask.shape[1]] = mask
    for _ in range(dilation):
        shape = _dilate(shape)
    start = int(np.argmax(shape.ravel()))
    _, ys, xs = trace_crack(padded_table(shape.view(np.uint8), 0), 1, shape.shape[1], start)
    return ys + top, xs + left


def _plan_cstar(c: _Component, height: int, width: int,
                max_dilation: int) -> tuple[CstarChain, float] | None:
    """The paper's search: grow the step from INITIAL_STEP until the chain
    meets the rate target, dilate until at most ERROR_PIXELS of the component
    fall outside the polygon (up to max_dilation). None if no chain exists
    (the component lies within one step of its start)."""
    area = int(c.fill[2].sum())
    budget = RATE_TARGET * 3 * _boundary_pixels(c.fill[2])
    step, dilation, contours, found = INITIAL_STEP, 0, {0: (c.ys, c.xs)}, None
    while True:
        if dilation not in contours:
            contours[dilation] = _dilated_contour(c, dilation, height, width)
        ys, xs = contours[dilation]
        first, moves = trace_chain(ys, xs, step)
        if first < 0 or len(moves) + 1 >= 1 << GAMMA_BITS:
            return found
        chain = CstarChain(int(ys[0]), int(xs[0]), step, first, moves)
        missing = area - _overlap(c.fill, fill_polygon(*chain.vertices(), height, width))
        bits = CstarCoder().bits(chain, height, width)
        found = chain, bits
        over_rate = bits > budget and step < MAX_STEP
        over_error = missing > ERROR_PIXELS and dilation < max_dilation
        if not (over_rate or over_error):
            return found
        step += over_rate
        dilation += over_error


def _seal(kind: int, regions: int, base: int, body: bytes) -> bytes:
    """Header word (version, kind, regions, base, CRC-8 of the rest) + body."""
    head = (CONTOUR_STREAM_VERSION | kind << 4 | regions << 8 | base << 16).to_bytes(4, "little")
    return head[:3] + bytes([crc8(head[:3] + body)]) + body


def _write(chains: list, regions: int, base: int, height: int, width: int) -> bytes:
    writer, methods, crack, cstar = Writer(), AdaptiveModel(1, 2), CrackCoder(), CstarCoder()
    for label, method, chain in chains:
        writer.uniform(label, regions)
        writer.symbols([method], [methods.row(0)])
        methods.update(0, method)
        if method == CRACK:
            crack.write(writer, chain.start, chain.turns.tolist(), height, width)
        else:
            cstar.write(writer, chain, height, width)
    body = len(chains).to_bytes(4, "little") + writer.words().astype("<u4").tobytes()
    return _seal(KIND_CHAINS, regions, base, body)


def _edges(chains: list) -> int:
    return sum(_chain_edges(method, chain) for _, method, chain in chains)


def _within_budget(chains: list, plans: list, height: int, width: int) -> list:
    """The chains, made to fit the decoder's edge budget: crack chains are
    replaced by their C* polygons (`plans`, None where there is none or the mode
    is lossless; a few times fewer steps); a partition whose boundaries are
    still too long is refused."""
    if _edges(chains) > edge_budget(height, width):
        chains = [(label, CSTAR, plan[0]) if plan is not None else (label, method, chain)
                  for (label, method, chain), plan in zip(chains, plans, strict=True)]
    return _checked(chains, height, width)


def _checked(chains: list, height: int, width: int) -> list:
    edges = _edges(chains)
    if edges > edge_budget(height, width):
        raise _too_long(str(edges), height, width)
    return chains


def encode_partition(labels: np.ndarray, mode: str = "auto", *,
                     max_dilation: int = MAX_DILATION) -> tuple[bytes, np.ndarray]:
    """-> (contour stream, the label map the decoder will reconstruct).
    mode: auto | lossless | lossy; max_dilation: the most 3x3 dilations the
    C* search may apply to a component (the paper's error control)."""
    if mode not in MODES:
        raise MoricArgumentError(f"contour mode must be one of {', '.join(MODES)}, got {mode!r}")
    labels = np.asarray(labels)
    regions = check_partition(labels, MAX_CONTOUR_REGIONS)
    height, width = labels.shape
    if regions == 1:
        return _seal(KIND_SINGLE, 1, 0, b""), np.zeros((height, width), dtype=np.int32)
    painted, base = _analyse(labels, mode)
    lossless = [(c.label, CRACK, c) for c in painted]
    chains = list(lossless)
    plans = [None if mode == "lossless" else _plan_cstar(c, height, width, max_dilation)
             for c in painted]
    for i, (c, plan) in enumerate(zip(painted, plans, strict=True)):
        if plan is not None and (mode == "lossy" or plan[1] <= LOSSY_GAIN * CrackCoder().bits(
                c.turns.tolist(), height, width)):
            chains[i] = (c.label, CSTAR, plan[0])
    chains = _within_budget(chains, plans, height, width)
    while True:
        data = _write(chains, regions, base, height, width)
        decoded = _decode(data, height, width, regions, check=False)
        present = np.bincount(decoded.ravel(), minlength=regions) > 0
        if present.all():
            return data, decoded
        if chains is lossless:
            raise AssertionError("lossless contour chains lost a region")  # a bug, not input
        # lossy polygons swallowed a whole label: code that label exactly, or
        # everything once that is not enough
        missing = set(np.flatnonzero(~present).tolist())
        if all(method == CRACK for label, method, _ in chains if label in missing):
            chains = _checked(lossless, height, width)
        else:
            chains = _checked([lossless[i] if ch[0] in missing else ch
                               for i, ch in enumerate(chains)], height, width)


def decode_partition(data: bytes, height: int, width: int, max_regions: int = MAX_CODED_REGIONS,
                     stats: list[tuple[int, float]] | None = None) -> np.ndarray:
    """The label map (height, width) int32, labels 0..N-1 all used, N <= max_regions.
    `stats` receives (label, bits) per chain, the bits being its information
    content (the range coder adds a few bits in all)."""
    return _decode(data, height, width, max_regions, check=True, stats=stats)


def _decode(data: bytes, height: int, width: int, max_regions: int, check: bool,
            stats: list[tuple[int, float]] | None = None) -> np.ndarray:
    if height < 1 or width < 1:
        raise ContourFormatError(f"bad image size {width}x{height} for a contour stream")
    refusal = too_large(width, height)
    if refusal:
        raise ContourFormatError(refusal)
    if len(data) < 4 or len(data) % 4:
        raise ContourFormatError(f"corrupt contour stream ({len(data)} bytes, not whole words)")
    data = bytes(data)
    if crc8(data[:3] + data[4:]) != data[3]:
        raise ContourFormatError("corrupt contour stream (checksum mismatch)")
    head = int.from_bytes(data[:4], "little")
    version, kind, regions, base = head & 15, head >> 4 & 15, head >> 8 & 255, head >> 16 & 255
    if version != CONTOUR_STREAM_VERSION:
        raise ContourFormatError(f"unknown contour stream version {version}")
    if not 1 <= regions <= min(max_regions, MAX_CONTOUR_REGIONS) or base >= regions:
        raise ContourFormatError(f"corrupt contour stream ({regions} regions, base {base}, "
                                 f"at most {max_regions})")
    if kind == KIND_SINGLE:
        if regions != 1 or len(data) != 4:
            raise ContourFormatError("corrupt contour stream (single region with data)")
        return np.zeros((height, width), dtype=np.int32)
    if kind != KIND_CHAINS or regions < 2 or len(data) < 8:
        raise ContourFormatError(f"corrupt contour stream (kind {kind}, {regions} regions)")
    count = int.from_bytes(data[4:8], "little")
    if count > height * width:
        raise ContourFormatError(f"corrupt contour stream ({count} chains in a "
                                 f"{width}x{height} image)")
    reader = Reader(np.frombuffer(data, dtype="<u4")[2:].astype(np.uint32))
    canvas = RunCanvas(height, width, base)
    methods, crack, cstar = AdaptiveModel(1, 2), CrackCoder(), CstarCoder()
    budget = [edge_budget(height, width)]
    rows_left = _rows_budget(height, width)
    for _ in range(count):
        budget[0] -= CHAIN_EDGES
        if budget[0] < 0:
            raise ContourFormatError("corrupt contour stream (more contour edges than "
                                     "the image allows)")
        before = reader.spent
        label = reader.uniform(regions)
        method = reader.symbol(methods.row(0), 2)
        methods.update(0, method)
        coder = crack if method == CRACK else cstar
        ys, xs = coder.read(reader, height, width, budget)
        rows_left -= _rows_crossed(ys, height)
        if rows_left < 0:
            raise ContourFormatError("corrupt contour stream (its chains cross too many rows)")
        canvas.paint(*polygon_runs(ys, xs, height, width), label)
        if stats is not None:
            stats.append((label, reader.spent - before))
    if not reader.finished():
        raise ContourFormatError("corrupt contour stream (trailing data)")
    labels = canvas.labels()
    if check:
        used = np.bincount(labels.ravel(), minlength=regions)
        if not used.all():
            raise ContourFormatError(f"corrupt contour stream (region "
                                     f"{int(np.argmin(used))} is empty)")
    return labels

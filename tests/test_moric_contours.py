"""MoRIC contour coding: crack (lossless) and C* (lossy) chains of a partition."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from segpic_codec.errors import SegpicError
from segpic_codec.moric.contours import stream as contour_stream
from segpic_codec.moric.contours.entropy import ContourFormatError, crc8
from segpic_codec.moric.contours.geometry import (
    DIRECTIONS,
    UNIT_SHIFT,
    UNIT_X,
    UNIT_Y,
    corners_of_turns,
    fill_polygon,
    label_components,
    padded_table,
    trace_crack,
)
from segpic_codec.moric.contours.partition import check_partition, relabel_first_appearance
from segpic_codec.moric.contours.stream import decode_partition, encode_partition
from segpic_codec.moric.errors import MoricArgumentError


def blobs(height: int, width: int, regions: int, seed: int) -> np.ndarray:
    """Random smooth blobs: labels of the nearest of a few random centres, warped."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y += 3 * np.sin(x / 5 + seed)
    x += 3 * np.cos(y / 7 + seed)
    centres = rng.uniform(0, 1, (regions, 2)) * (height, width)
    d = (y[None] - centres[:, 0, None, None]) ** 2 + (x[None] - centres[:, 1, None, None]) ** 2
    return relabel_first_appearance(d.argmin(axis=0))


def rings() -> np.ndarray:
    """Nested regions with holes, islands inside holes, and a region on every border."""
    y, x = np.mgrid[0:48, 0:64]
    r = np.hypot(y - 24, x - 30)
    labels = np.zeros((48, 64), dtype=np.int32)
    labels[r < 20] = 1
    labels[r < 14] = 0  # a hole of region 0 in region 1
    labels[r < 8] = 2
    labels[r < 3] = 1  # an island of 1 inside 2 inside 0 inside 1
    labels[:, :3] = 3  # touches three borders
    labels[10:12, 50:52] = 2  # a small square
    labels[40, 60] = 4  # one-pixel regions
    labels[0, 63] = 5
    labels[47, 0] = 5
    return relabel_first_appearance(labels)


def diagonal_pinches() -> np.ndarray:
    """Regions touching only at corners (4-connectivity splits them)."""
    labels = (np.indices((12, 12)).sum(axis=0) % 2).astype(np.int32)  # checkerboard
    labels[4:8, 4:8] = 2
    return labels


CASES = {
    "blobs": blobs(40, 56, 3, 1),
    "blobs-many": blobs(64, 48, 16, 2),
    "rings": rings(),
    "pinches": diagonal_pinches(),
    "one-pixel": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 2]]),
    "1x1": np.zeros((1, 1), dtype=np.int32),
    "1xN": np.array([[0, 0, 1, 1, 1, 0, 2, 2]]),
    "Nx1": np.array([[0], [1], [1], [0]]),
    "single": np.zeros((30, 20), dtype=np.int32),
    "stripes": np.repeat(np.arange(16), 3)[None, :].repeat(5, axis=0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_lossless_round_trip_is_exact(name):
    labels = CASES[name]
    data, decoded = encode_partition(labels, "lossless")
    assert len(data) % 4 == 0
    assert np.array_equal(decoded, labels)
    assert np.array_equal(decode_partition(data, *labels.shape), labels)


@pytest.mark.parametrize("mode", ["lossy", "auto"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_lossy_decoder_rebuilds_the_encoders_map(name, mode):
    labels = CASES[name]
    data, decoded = encode_partition(labels, mode)
    assert len(data) % 4 == 0
    assert decoded.shape == labels.shape
    assert check_partition(decoded) == check_partition(labels)
    assert np.array_equal(decode_partition(data, *labels.shape), decoded)


def test_random_partitions_round_trip():
    rng = np.random.default_rng(7)
    for seed in range(30):
        height, width = rng.integers(1, 40, 2)
        labels = blobs(int(height), int(width), int(rng.integers(1, 7)), seed)
        for mode in ("lossless", "lossy", "auto"):
            data, decoded = encode_partition(labels, mode)
            assert np.array_equal(decode_partition(data, height, width), decoded)
            if mode == "lossless":
                assert np.array_equal(decoded, labels)


def test_lossy_pays_on_ragged_contours():
    smooth = blobs(192, 256, 3, 5)
    # ragged boundaries: every pixel takes the label of a random neighbour
    rng = np.random.default_rng(0)
    rows = np.clip(np.arange(192)[:, None] + rng.integers(-1, 2, smooth.shape), 0, 191)
    cols = np.clip(np.arange(256)[None, :] + rng.integers(-1, 2, smooth.shape), 0, 255)
    ragged = relabel_first_appearance(smooth[rows, cols])
    lossless, exact = encode_partition(ragged, "lossless")
    lossy, approx = encode_partition(ragged, "lossy")
    assert np.array_equal(exact, ragged)
    assert len(lossy) < 0.7 * len(lossless)
    assert (approx != ragged).mean() < 0.02
    # on smooth contours the exact code is about as cheap, and auto keeps it
    assert len(encode_partition(smooth, "auto")[0]) <= len(encode_partition(smooth, "lossless")[0])


def test_single_region_costs_one_word():
    data, decoded = encode_partition(np.zeros((300, 200), dtype=np.uint8))
    assert len(data) == 4
    assert not decoded.any()


def test_stream_validation_against_caller_limits():
    labels = blobs(20, 30, 5, 3)
    data, _ = encode_partition(labels, "lossless")
    with pytest.raises(ContourFormatError, match="at most 4"):
        decode_partition(data, 20, 30, max_regions=4)
    with pytest.raises(SegpicError):
        decode_partition(data, 20, 31)
    with pytest.raises(SegpicError, match="contour mode"):
        encode_partition(labels, "fast")
    with pytest.raises(SegpicError, match="unused"):
        encode_partition(np.array([[0, 2]]))


def test_decoding_in_a_fresh_process_is_bit_exact(tmp_path):
    labels = blobs(96, 128, 4, 11)
    data, decoded = encode_partition(labels, "lossy")
    (tmp_path / "s.bin").write_bytes(data)
    script = ("import sys, numpy as np\n"
              "from segpic_codec.moric.contours.stream import decode_partition\n"
              "d = open(sys.argv[1], 'rb').read()\n"
              "np.save(sys.argv[2], decode_partition(d, 96, 128))\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "s.bin"),
                    str(tmp_path / "m.npy")], check=True, timeout=120)
    assert np.array_equal(np.load(tmp_path / "m.npy"), decoded)


def _corruptions(data: bytes, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(len(data)):  # one flipped bit and one replaced byte per position
        flipped = bytearray(data)
        flipped[i] ^= 1 << int(rng.integers(8))
        cases.append(bytes(flipped))
        replaced = bytearray(data)
        replaced[i] = (replaced[i] + int(rng.integers(1, 256))) % 256
        cases.append(bytes(replaced))
    cases += [data[:k] for k in range(0, len(data), 4)]  # truncation at every word
    cases += [data[:-1], data + b"\0\0\0\0"]
    for _ in range(40):  # random bytes, and random bodies behind a valid header and CRC
        cases.append(rng.integers(0, 256, 4 * int(rng.integers(1, 40)), dtype=np.uint8).tobytes())
        body = bytearray(data[:4] + rng.integers(0, 256, len(data) - 4, dtype=np.uint8).tobytes())
        body[3] = crc8(bytes(body[:3] + body[4:]))
        cases.append(bytes(body))
    return cases


@pytest.mark.parametrize("mode", ["lossless", "lossy"])
def test_corrupt_streams_raise_quickly(mode):
    labels = blobs(64, 96, 4, 4)
    data, _ = encode_partition(labels, mode)
    for case in _corruptions(data, seed=len(data)):
        start = time.process_time()
        with pytest.raises(ContourFormatError):
            decode_partition(case, 64, 96)
        assert time.process_time() - start < 1.0
    assert issubclass(ContourFormatError, SegpicError)


def test_hostile_counts_do_not_allocate_or_hang():
    # a valid header claiming 2**32 - 1 chains in a small image
    body = (2**32 - 1).to_bytes(4, "little") + b"\0" * 8
    head = (1 | 1 << 4 | 3 << 8).to_bytes(4, "little")[:3]
    data = head + bytes([crc8(head + body)]) + body
    with pytest.raises(ContourFormatError, match="chains"):
        decode_partition(data, 10, 10)
    with pytest.raises(ContourFormatError):
        decode_partition(b"\0\0\0\0", 0, 10)


# --- geometry --------------------------------------------------------------

def test_direction_table_is_the_rounded_unit_circle():
    angles = 2 * math.pi * np.arange(DIRECTIONS) / DIRECTIONS
    scale = 1 << UNIT_SHIFT
    assert np.array_equal(UNIT_X, np.round(np.cos(angles) * scale).astype(np.int64))
    assert np.array_equal(UNIT_Y, np.round(np.sin(angles) * scale).astype(np.int64))


def test_crack_boundary_fills_component_and_holes():
    labels = rings()
    height, width = labels.shape
    comp, _, first = label_components(labels)
    table = padded_table(comp, -1)
    for cid in range(first.size):
        turns, ys, xs = trace_crack(table, cid, width, int(first[cid]))
        cy, cx = corners_of_turns(int(ys[0]), int(xs[0]), turns.tolist())
        r0, c0, mask = fill_polygon(cy, cx, height, width)
        filled = np.zeros((height, width), dtype=bool)
        filled[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]] = mask
        inside = comp == cid
        assert np.array_equal(filled & inside, inside)  # the component itself
        # everything else it encloses is whole components (its holes)
        for other in np.unique(comp[filled & ~inside]):
            assert filled[comp == other].all()


def test_polygon_fill_matches_pixel_centres():
    rng = np.random.default_rng(0)
    for _ in range(20):
        ys, xs = rng.integers(-5, 30, 6), rng.integers(-5, 40, 6)
        r0, c0, mask = fill_polygon(ys, xs, 25, 35)
        filled = np.zeros((25, 35), dtype=bool)
        filled[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]] = mask
        # reference: winding number of every pixel centre, in exact fractions
        cy, cx = np.mgrid[0:25, 0:35] + 0.5
        winding = np.zeros((25, 35), dtype=int)
        for a in range(6):
            y0, x0, y1, x1 = ys[a], xs[a], ys[(a + 1) % 6], xs[(a + 1) % 6]
            if y0 == y1:
                continue
            crosses = (np.minimum(y0, y1) <= cy) & (cy < np.maximum(y0, y1))
            x_cross = x0 + (cy - y0) * (x1 - x0) / (y1 - y0)
            winding += np.where(crosses & (x_cross < cx), 1 if y1 > y0 else -1, 0)
        assert np.array_equal(filled, winding != 0)


# --- the decoder's work is bounded ------------------------------------------

def checkerboard(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return ((y + x) % 2).astype(np.int32)


def test_too_long_boundaries_are_refused_before_tracing():
    labels = checkerboard(200, 300)  # 30,000 one-pixel components
    for mode in ("lossless", "lossy", "auto"):
        start = time.process_time()
        with pytest.raises(MoricArgumentError, match="too long to code.*per row and column"):
            encode_partition(labels, mode)
        assert time.process_time() - start < 5.0


def test_budget_turns_crack_chains_into_cstar_or_refuses(monkeypatch):
    labels = blobs(64, 96, 4, 4)
    crack_edges = sum(contour_stream._chain_edges(contour_stream.CRACK, c)
                      for c in contour_stream._analyse(labels, "lossless")[0])
    # a budget the exact chains exceed but C* polygons fit
    monkeypatch.setattr(contour_stream, "EDGES_PER_SIDE", crack_edges // (64 + 96 + 2))
    assert contour_stream.edge_budget(64, 96) < crack_edges
    with pytest.raises(MoricArgumentError, match="too long"):
        encode_partition(labels, "lossless")
    data, decoded = encode_partition(labels, "auto")
    assert np.array_equal(decode_partition(data, 64, 96), decoded)


def test_decoder_refuses_streams_over_the_edge_budget(monkeypatch):
    # a valid lossless stream of a fragmented map, written past the encoder's
    # check: the decoder stops once the edges exceed the image's budget
    labels = checkerboard(40, 40)
    painted, base = contour_stream._analyse(labels, "lossy")
    chains = [(c.label, contour_stream.CRACK, c) for c in painted]
    data = contour_stream._write(chains, 2, base, 40, 40)
    assert contour_stream._edges(chains) > contour_stream.edge_budget(40, 40)
    start = time.process_time()
    with pytest.raises(ContourFormatError, match="corrupt contour stream"):
        decode_partition(data, 40, 40)
    assert time.process_time() - start < 2.0
    # the same stream decodes when the budget allows it (so the refusal is the budget's)
    monkeypatch.setattr(contour_stream, "EDGES_PER_SIDE", 1 << 20)
    assert np.array_equal(decode_partition(data, 40, 40), labels)

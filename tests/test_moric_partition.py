"""MoRIC region partitions: validation, label images, unsupervised partitions."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from segpic_codec.errors import SegpicError
from segpic_codec.moric.contours.partition import (
    PartitionError,
    auto_partition,
    check_partition,
    load_label_image,
)


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with a few discs: regions a segmenter can find."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 200 / max(width, 1), y * 200 / max(height, 1),
                      np.full((height, width), 80.0)], axis=-1)
    for _ in range(3):
        cy, cx = rng.integers(0, max(height, 1)), rng.integers(0, max(width, 1))
        r = rng.integers(max(2, min(height, width) // 8), max(3, min(height, width) // 3))
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


# --- check_partition ---------------------------------------------------------

def test_check_partition_counts_regions():
    assert check_partition(np.array([[0, 1], [2, 1]])) == 3
    assert check_partition(np.zeros((1, 1), dtype=np.uint8)) == 1


@pytest.mark.parametrize("labels, words", [
    (np.zeros((2, 2, 2), dtype=np.int32), "2-D"),
    (np.zeros((0, 3), dtype=np.int32), "2-D"),
    (np.zeros((2, 2)), "integer"),
    (np.array([[0, -1]]), ">= 0"),
    (np.arange(20).reshape(4, 5), "at most 16"),
    (np.array([[0, 2]]), "label 1 is unused"),
])
def test_check_partition_rejects(labels, words):
    with pytest.raises(PartitionError, match=words):
        check_partition(labels, 16)


# --- load_label_image ---------------------------------------------------------

def test_label_image_relabels_in_raster_order(tmp_path):
    values = np.array([[7, 7, 3], [200, 3, 7]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "l.png")
    labels = load_label_image(tmp_path / "l.png", 2, 3)
    assert labels.tolist() == [[0, 0, 1], [2, 1, 0]]


def test_label_image_16_bit_and_palette(tmp_path):
    values = np.array([[60000, 5, 5], [60000, 300, 5]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").mode.startswith("I")
    assert load_label_image(tmp_path / "s.png", 2, 3).tolist() == [[0, 1, 1], [0, 2, 1]]
    palette = Image.fromarray(np.array([[2, 0], [0, 9]], dtype=np.uint8), mode="P")
    palette.putpalette([0, 0, 0] * 256)  # one colour: the indices are the labels
    palette.save(tmp_path / "p.png")
    assert load_label_image(tmp_path / "p.png", 2, 2).tolist() == [[0, 1], [1, 2]]


def test_label_image_rgb_with_few_colours_is_accepted(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[:, 2:] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert load_label_image(tmp_path / "c.png", 4, 4).tolist() == [[0, 0, 1, 1]] * 4


def test_label_image_errors(tmp_path):
    Image.fromarray(np.zeros((5, 7), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(PartitionError, match="is 7x5, the image is 8x6"):
        load_label_image(tmp_path / "small.png", 6, 8)
    Image.fromarray(np.arange(40, dtype=np.uint8).reshape(5, 8)).save(tmp_path / "many.png")
    with pytest.raises(PartitionError, match="40 labels, at most 16"):
        load_label_image(tmp_path / "many.png", 5, 8)
    photo = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(PartitionError, match="RGB image with 48 colours, not a label image"):
        load_label_image(tmp_path / "photo.png", 6, 8)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(PartitionError, match="cannot read label image"):
        load_label_image(tmp_path / "junk.png", 6, 8)
    with pytest.raises(PartitionError, match="cannot read label image"):
        load_label_image(tmp_path / "missing.png", 6, 8)
    Image.fromarray(np.zeros((6, 8), dtype=np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(PartitionError, match="mode F"):
        load_label_image(tmp_path / "float.tiff", 6, 8)
    assert issubclass(PartitionError, SegpicError)


def test_truncated_label_png_is_an_error(tmp_path):
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 3
    Image.fromarray(values).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(PartitionError, match="cannot read label image"):
        load_label_image(tmp_path / "t.png", 64, 64)


# --- auto_partition ---------------------------------------------------------

@pytest.mark.parametrize("height, width", [(1, 1), (1, 2), (1, 9), (9, 1), (2, 2), (3, 50),
                                           (40, 30), (70, 90), (2, 5000)])
def test_auto_partition_any_size(height, width):
    labels = auto_partition(photo_like(height, width), 3)
    assert labels.shape == (height, width)
    regions = check_partition(labels)
    assert regions == min(3, height * width)
    assert labels.flat[0] == 0


def test_auto_partition_is_deterministic_and_honours_count():
    image = photo_like(120, 160, seed=3)
    first = auto_partition(image, 4)
    assert np.array_equal(first, auto_partition(image, 4))
    assert check_partition(first) == 4
    assert check_partition(auto_partition(image, 1)) == 1
    flat = np.full((50, 60, 3), 128, dtype=np.uint8)
    assert check_partition(auto_partition(flat, 3)) == 3


def test_auto_partition_regions_are_large():
    labels = auto_partition(photo_like(256, 384, seed=1), 3)
    sizes = np.bincount(labels.ravel())
    assert sizes.min() > 0.02 * labels.size


def test_auto_partition_full_size_is_quick():
    image = photo_like(512, 768, seed=2)
    start = time.process_time()
    labels = auto_partition(image, 3)
    # CPU seconds (other work on the machine does not count): about half a second
    assert time.process_time() - start < 5.0
    assert check_partition(labels) == 3


@pytest.mark.parametrize("pixels, count", [
    (np.zeros((4, 4), dtype=np.uint8), 3),
    (np.zeros((4, 4, 3), dtype=np.float32), 3),
    (np.zeros((0, 4, 3), dtype=np.uint8), 3),
    (np.zeros((4, 4, 3), dtype=np.uint8), 0),
])
def test_auto_partition_rejects_bad_input(pixels, count):
    with pytest.raises(PartitionError):
        auto_partition(pixels, count)

"""What the region partition costs in a MoRIC stream: contour bits per image.

Two sets of partitions:
  * ground truth: the first --masks label masks of $SEGPIC_SHARED/data/train/masks
    (sorted by name, so BSDS500 human segmentations), with regions beyond
    --max-regions merged into the neighbour they share the longest boundary
    with (smallest region first) to fit the codec's region limit;
  * auto: `auto_partition(image, 3)` on the 24 Kodak images.

For each: the crack chain code (lossless), C* (lossy, with the share of
pixels whose label changes) and auto mode, against PNG files of the label map:
one palette PNG (bit depth 1/2/4/8, the fewest that hold N labels) and N-1
one-bit PNGs (one per region but the last, which is implied). Contour points
are pixels with a 4-neighbour of another label (both sides of a boundary
count). Prints a markdown table.

    python scripts/contour_bits.py [--masks 20] [--kodak 24] [--per-image]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from segpic_codec.moric.contours.partition import auto_partition, relabel_first_appearance
from segpic_codec.moric.contours.stream import encode_partition
from segpic_codec.shared_data import shared_path

DATA = shared_path("data")


def merge_to(labels: np.ndarray, max_regions: int) -> np.ndarray:
    """Merge the smallest region into its longest-bordering neighbour until
    at most max_regions remain."""
    labels = relabel_first_appearance(labels)
    while labels.max() + 1 > max_regions:
        n = labels.max() + 1
        small = int(np.argmin(np.bincount(labels.ravel(), minlength=n)))
        pairs = np.concatenate([
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1].ravel(), labels[1:].ravel()], 1)])
        touching = pairs[(pairs[:, 0] == small) ^ (pairs[:, 1] == small)]
        other = np.where(touching[:, 0] == small, touching[:, 1], touching[:, 0])
        labels = relabel_first_appearance(np.where(labels == small, np.bincount(other).argmax(),
                                                   labels))
    return labels


def contour_points(labels: np.ndarray) -> int:
    edge = np.zeros(labels.shape, dtype=bool)
    dh = labels[:, 1:] != labels[:, :-1]
    dv = labels[1:] != labels[:-1]
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    edge[1:] |= dv
    edge[:-1] |= dv
    return int(edge.sum())


def png_bits(labels: np.ndarray) -> tuple[int, int]:
    """(palette PNG bits, sum of N-1 one-bit PNG bits)."""
    n = int(labels.max()) + 1
    depth = next(b for b in (1, 2, 4, 8) if n <= 1 << b)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([v for i in range(256) for v in (i, i, i)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, bits=depth)
    palette = len(buffer.getvalue()) * 8
    masks = 0
    for k in range(n - 1):
        buffer = io.BytesIO()
        Image.fromarray(labels == k).save(buffer, format="PNG", optimize=True)
        masks += len(buffer.getvalue()) * 8
    return palette, masks


def measure(name: str, labels: np.ndarray) -> dict:
    row = {"name": name, "pixels": labels.size, "regions": int(labels.max()) + 1,
           "points": contour_points(labels)}
    row["palette"], row["masks"] = png_bits(labels)
    for mode in ("lossless", "lossy", "auto"):
        start = time.perf_counter()
        data, decoded = encode_partition(labels, mode)
        row[f"{mode}_s"] = time.perf_counter() - start
        row[mode] = len(data) * 8
        row[f"{mode}_changed"] = float((decoded != labels).mean())
    return row


def summary(title: str, rows: list[dict]) -> str:
    points = sum(r["points"] for r in rows)
    pixels = sum(r["pixels"] for r in rows)

    def per_point(key: str) -> str:
        return f"{sum(r[key] for r in rows) / points:.3f}"

    def bpp(key: str) -> str:
        return f"{sum(r[key] for r in rows) / pixels:.4f}"

    def changed(key: str) -> str:
        return f"{100 * sum(r[key + '_changed'] * r['pixels'] for r in rows) / pixels:.2f}%"

    return (f"| {title} | {len(rows)} | {np.mean([r['regions'] for r in rows]):.1f} | {points} | "
            f"{per_point('lossless')} / {bpp('lossless')} | "
            f"{per_point('lossy')} / {bpp('lossy')} / {changed('lossy')} | "
            f"{per_point('auto')} / {bpp('auto')} / {changed('auto')} | "
            f"{per_point('palette')} / {bpp('palette')} | {per_point('masks')} / {bpp('masks')} | "
            f"{max(r['lossy_s'] for r in rows):.2f} |")


HEADER = ("| partitions | images | regions (mean) | contour points | crack, lossless: bits/point / "
          "bpp | C*: bits/point / bpp / pixels changed | auto: bits/point / bpp / changed | "
          "palette PNG: bits/point / bpp | N-1 one-bit PNGs: bits/point / bpp | "
          "slowest C* encode (s) |\n|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--masks", type=int, default=20)
    parser.add_argument("--max-regions", type=int, default=16)
    parser.add_argument("--kodak", type=int, default=24)
    parser.add_argument("--regions", type=int, default=3, help="auto partition region count")
    parser.add_argument("--per-image", action="store_true")
    args = parser.parse_args()
    tables = []
    masks = sorted((DATA / "train" / "masks").glob("*.png"))[:args.masks]
    gt = [measure(p.stem, merge_to(np.asarray(Image.open(p)), args.max_regions)) for p in masks]
    if gt:
        tables.append((f"ground truth (<= {args.max_regions} regions)", gt))
    kodak = []
    for k in range(1, args.kodak + 1):
        pixels = np.asarray(Image.open(DATA / "kodak" / f"kodim{k:02d}.png").convert("RGB"))
        kodak.append(measure(f"kodim{k:02d}", auto_partition(pixels, args.regions)))
    if kodak:
        tables.append((f"Kodak auto_partition N={args.regions}", kodak))
    print(HEADER)
    for title, rows in tables:
        print(summary(title, rows))
    if args.per_image:
        print()
        print(HEADER)
        for _, rows in tables:
            for r in rows:
                print(summary(r["name"], [r]))


if __name__ == "__main__":
    main()

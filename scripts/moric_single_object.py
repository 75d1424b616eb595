"""Single-object compression: MoRIC coding one object (`--roi`) against AVIF and
HEIC coding the object's bounding box, on held-out photos with ground-truth
masks.

Images: the first --images COCO-MINI photos of $SEGPIC_SHARED/data/train (sorted by
name; COCO instance masks, 0 = not a thing) whose largest instance covers
10-50% of the image. None of them was used to tune anything. The object is
that largest instance.

  * MoRIC: `codec.encode(pixels, roi=object)` at each --qualities, --steps steps;
  * AVIF / HEIC (the bench's settings): the object's bounding box, pixels
    outside the object set to the object's mean colour, at several qualities.
Distortion: PSNR over the object's pixels (RGB). Rate: file bits over the
whole image's pixels (the box codecs' files do not carry the mask: their rate
is a lower bound of what a user would need). Prints one JSON line per point,
then BD-rates (MoRIC against each, per image and averaged) and writes
everything to --out.

    python scripts/moric_single_object.py --images 4 --steps 500 \
        --out bench/results/moric-single-object
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from segpic_codec.bench.bd_rate import bd_rate
from segpic_codec.moric import codec
from segpic_codec.shared_data import shared_path

TRAIN = shared_path("data", "train", required=False)
AVIF_QUALITIES = (12, 20, 28, 36, 44, 52, 60, 68, 76)
HEIC_QUALITIES = (10, 20, 30, 40, 50, 60, 70)


def pick_images(train: Path, count: int) -> list[tuple[Path, np.ndarray]]:
    rows = [line.split("\t") for line in (train / "MANIFEST.tsv").read_text().splitlines()[1:]]
    picked = []
    for row in sorted(rows):
        if row[3] != "Obmutescence/COCO-MINI" or not row[5]:
            continue
        labels = np.asarray(Image.open(train / row[5]))
        counts = np.bincount(labels.ravel())
        counts[0] = 0  # not a thing
        if counts.max() == 0:
            continue
        share = counts.max() / labels.size
        if 0.10 <= share <= 0.50:
            picked.append((train / row[0], labels == int(np.argmax(counts))))
        if len(picked) == count:
            break
    return picked


def object_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    err = (a[mask][:, :3].astype(np.float64) - b[mask][:, :3].astype(np.float64)) ** 2
    return float(10 * np.log10(255.0**2 / max(err.mean(), 1e-12)))


def boxed(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
    crop = pixels[box[0]:box[1], box[2]:box[3]].copy()
    inside = mask[box[0]:box[1], box[2]:box[3]]
    crop[~inside] = pixels[mask].mean(axis=0).round().astype(np.uint8)
    return crop, inside, box


def box_codec(fmt: str, crop: np.ndarray, inside: np.ndarray, quality: int,
              pixels_total: int) -> dict:
    buf = io.BytesIO()
    if fmt == "AVIF":
        Image.fromarray(crop).save(buf, format="AVIF", quality=quality, subsampling="4:4:4",
                                   speed=6)
    else:
        Image.fromarray(crop).save(buf, format="HEIF", quality=quality, chroma=420)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        out = np.asarray(im.convert("RGB"))
    return {"bpp": 8 * len(buf.getvalue()) / pixels_total,
            "psnr": object_psnr(out, crop, inside)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the first SKIP of those images (to finish a stopped "
                             "run; join the point lines with --from-points)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--qualities", type=float, nargs="+", default=[1.0, 2.5, 3.8, 4.7])
    parser.add_argument("--train", type=Path, default=TRAIN)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--from-points", type=Path, default=None,
                        help="summarise the point lines of an earlier run's output instead")
    args = parser.parse_args()
    if args.from_points:
        points = [json.loads(line) for line in args.from_points.read_text().splitlines()
                  if line.startswith('{"image"')]
        # only images with every MoRIC quality measured
        done = {i for i in {p["image"] for p in points}
                if sum(p["image"] == i and p["codec"] == "moric-roi" for p in points)
                == len(args.qualities)}
        points = [p for p in points if p["image"] in done]
        write(points, args.out)
        return
    import pillow_heif

    pillow_heif.register_heif_opener()
    points = []
    for path, mask in pick_images(args.train, args.images)[args.skip:]:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        total = mask.size
        crop, inside, box = boxed(pixels, mask)
        for q in args.qualities:
            start = time.perf_counter()
            enc = codec.encode(pixels, quality=q, steps=args.steps, roi=mask)
            seconds = time.perf_counter() - start
            decoded = codec.decode(enc.payload, enc.streams, pixels.shape[1], pixels.shape[0])
            assert np.array_equal(decoded, enc.reconstruction)
            decoded_mask = decoded[..., 3] > 0
            size = len(enc.payload) + sum(map(len, enc.streams))
            point = {"image": path.stem, "codec": "moric-roi", "setting": q,
                     "bpp": 8 * size / total, "psnr": object_psnr(decoded, pixels, mask),
                     "contour_bytes": len(enc.streams[1]),
                     "mask_mismatch": int((decoded_mask != mask).sum()),
                     "object_share": round(float(mask.mean()), 4),
                     "encode_s": round(seconds, 1)}
            points.append(point)
            print(json.dumps(point), flush=True)
        for fmt, qualities in (("AVIF", AVIF_QUALITIES), ("HEIF", HEIC_QUALITIES)):
            for q in qualities:
                point = {"image": path.stem, "codec": "avif-box" if fmt == "AVIF" else
                         "heic-box", "setting": q, **box_codec(fmt, crop, inside, q, total)}
                points.append(point)
                print(json.dumps(point), flush=True)
    write(points, args.out)


def write(points: list[dict], out: Path | None) -> None:
    summary = summarise(points)
    print(json.dumps(summary, indent=1))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "points.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def _curve(points: list[dict], image: str, name: str) -> tuple[list[float], list[float]]:
    sel = sorted((p["bpp"], p["psnr"]) for p in points
                 if p["image"] == image and p["codec"] == name)
    return [s[0] for s in sel], [s[1] for s in sel]


def summarise(points: list[dict]) -> dict:
    """BD-rate of MoRIC's object coding against each box codec, per image."""
    out: dict = {}
    for anchor in ("avif-box", "heic-box"):
        per_image = {}
        for image in sorted({p["image"] for p in points}):
            result = bd_rate(*_curve(points, image, anchor),
                             *_curve(points, image, "moric-roi"))
            per_image[image] = None if result.value is None else round(result.value, 1)
        valid = [v for v in per_image.values() if v is not None]
        out[f"bd_rate_vs_{anchor}"] = {"per_image": per_image,
                                       "mean": round(float(np.mean(valid)), 1) if valid
                                       else None}
    return out


if __name__ == "__main__":
    main()

"""Training data: photos, their class-agnostic masks, and random crops.

Masks are privileged information (Sec. 3.2): used in training only. An image
with a ground-truth label map (`masks/<stem>.png` beside the images, any integer
labels) uses it; every other image gets a class-agnostic segmentation from
scikit-image (Felzenszwalb over-segmentation, regions then merged by mean colour
on a region adjacency graph), computed once and cached next to the run.

A *pack* is a compact copy of a training folder (downscaled JPEGs + PNG masks +
index.tsv) small enough to travel to a GPU machine; `segpic train` reads a pack
or a raw folder alike.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...image_io import list_images

MAX_MASK_REGIONS = 24  # regions of an unsupervised SegPIC mask (`unsupervised_mask`)


def compact_labels(labels: np.ndarray, cap: int = 255) -> np.ndarray:
    """Any integer label map -> uint8 labels 0..N-1 in order of value (ids carry
    no class), regions beyond `cap` merged into the last one."""
    _, inverse = np.unique(np.asarray(labels).astype(np.int64), return_inverse=True)
    return np.minimum(inverse.reshape(np.shape(labels)[:2]), cap).astype(np.uint8)


def unsupervised_mask(rgb: np.ndarray, max_regions: int = MAX_MASK_REGIONS) -> np.ndarray:
    """A class-agnostic label map (H, W) uint8 for an RGB uint8 image."""
    from skimage import graph, segmentation

    h, w = rgb.shape[:2]
    over = segmentation.felzenszwalb(rgb, scale=200, sigma=0.8, min_size=max(16, h * w // 400))
    labels = over
    # merge neighbouring regions of similar colour until the count is sensible
    for threshold in (20, 30, 45, 65, 90, 130):
        if labels.max() + 1 <= max_regions:
            break
        rag = graph.rag_mean_color(rgb, over, mode="distance")
        labels = graph.cut_threshold(over, rag, threshold)
    return compact_labels(labels, cap=254)


@dataclass
class TrainSample:
    name: str
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) uint8 label map


def _resize_pair(img: Image.Image, mask: Image.Image | None, short_side: int
                 ) -> tuple[Image.Image, Image.Image | None]:
    w, h = img.size
    s = min(w, h)
    if short_side and s > short_side:
        scale = short_side / s
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS)
        if mask is not None:
            mask = mask.resize(size, Image.Resampling.NEAREST)
    return img, mask


def _prepare_one(args: tuple[str, str, str | None, int]) -> tuple[str, bytes, bytes]:
    """Load, downscale, mask one image; return (stem, JPEG bytes, PNG mask bytes)."""
    path, stem, mask_path, short_side = args
    img = Image.open(path).convert("RGB")
    mask = None
    if mask_path is not None:
        mask = Image.open(mask_path)
        if mask.size != img.size:
            mask = None
    img, mask = _resize_pair(img, mask, short_side)
    if mask is None:
        labels = unsupervised_mask(np.asarray(img))
    else:
        labels = compact_labels(np.asarray(mask))
    jpg = io.BytesIO()
    img.save(jpg, format="JPEG", quality=84, subsampling=0)
    png = io.BytesIO()
    Image.fromarray(labels).save(png, format="PNG", optimize=True)
    return stem, jpg.getvalue(), png.getvalue()


def build_pack(src: Path, dst: Path, short_side: int = 256, workers: int = 2,
               progress=None) -> int:
    """Write a pack of every image in `src` (+ `src/masks/<stem>.png`) into `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "images").mkdir(exist_ok=True)
    (dst / "masks").mkdir(exist_ok=True)
    jobs = []
    for path in list_images(src):
        gt = src / "masks" / f"{path.stem}.png"
        jobs.append((str(path), path.stem, str(gt) if gt.exists() else None, short_side))
    rows = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for stem, jpg, png in pool.map(_prepare_one, jobs, chunksize=8):
            (dst / "images" / f"{stem}.jpg").write_bytes(jpg)
            (dst / "masks" / f"{stem}.png").write_bytes(png)
            rows.append(stem)
            if progress is not None:
                progress()
    (dst / "index.tsv").write_text("".join(f"{s}\n" for s in rows))
    return len(rows)


def _load_pack_item(args: tuple[str, str]) -> TrainSample:
    img_path, mask_path = args
    image = np.asarray(Image.open(img_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path))
    return TrainSample(Path(img_path).stem, image, mask)


def _load_raw_item(args: tuple[str, str | None, str]) -> TrainSample:
    path, mask_path, cache_dir = args
    image = np.asarray(Image.open(path).convert("RGB"))
    mask = None
    if mask_path is not None:
        m = np.asarray(Image.open(mask_path))
        if m.shape[:2] == image.shape[:2]:
            mask = compact_labels(m)
    if mask is None:
        key = hashlib.sha256(image.tobytes()).hexdigest()[:16]
        cached = Path(cache_dir) / f"{Path(path).stem}-{key}.png"
        if cached.exists():
            mask = np.asarray(Image.open(cached))
        else:
            mask = unsupervised_mask(image)
            Image.fromarray(mask).save(cached)
    return TrainSample(Path(path).stem, image, mask)


def load_training_set(folder: Path, cache_dir: Path, workers: int = 2,
                      min_size: int = 64) -> list[TrainSample]:
    """Load a pack (has index.tsv) or a raw image folder with optional masks/."""
    folder = Path(folder)
    if (folder / "index.tsv").exists():
        stems = [s for s in (folder / "index.tsv").read_text().split("\n") if s]
        jobs = [(str(folder / "images" / f"{s}.jpg"), str(folder / "masks" / f"{s}.png"))
                for s in stems]
        loader = _load_pack_item
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        jobs = []
        for path in list_images(folder):
            gt = folder / "masks" / f"{path.stem}.png"
            jobs.append((str(path), str(gt) if gt.exists() else None, str(cache_dir)))
        loader = _load_raw_item
    if not jobs:
        raise ValueError(f"no training images in {folder}")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        samples = list(pool.map(loader, jobs, chunksize=16))
    return [s for s in samples if min(s.image.shape[:2]) >= min_size]


class CropSampler:
    """Random crops + flips of images held on the training device as uint8.

    Images smaller than the crop are padded by reflection once, at load time.
    """

    def __init__(self, samples: list[TrainSample], crop: int, device: torch.device,
                 seed: int = 0):
        self.crop = crop
        self.device = device
        self.images: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        for s in samples:
            img = torch.from_numpy(np.ascontiguousarray(s.image)).permute(2, 0, 1)
            mask = torch.from_numpy(np.ascontiguousarray(s.mask)).unsqueeze(0)
            h, w = img.shape[1:]
            ph, pw = max(0, crop - h), max(0, crop - w)
            if ph or pw:
                img = torch.nn.functional.pad(img[None].float(), (0, pw, 0, ph),
                                              mode="reflect" if min(h, w) > max(ph, pw)
                                              else "replicate")[0].to(torch.uint8)
                mask = torch.nn.functional.pad(mask[None].float(), (0, pw, 0, ph),
                                               mode="replicate")[0].to(torch.uint8)
            self.images.append(img.to(device))
            self.masks.append(mask.to(device))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> x (B, 3, crop, crop) float in [0, 1], masks (B, crop, crop) int64."""
        c = self.crop
        xs, ms = [], []
        for i in self.rng.integers(0, len(self.images), size=batch):
            img, mask = self.images[i], self.masks[i]
            h, w = img.shape[1:]
            top = int(self.rng.integers(0, h - c + 1))
            left = int(self.rng.integers(0, w - c + 1))
            x = img[:, top : top + c, left : left + c]
            m = mask[:, top : top + c, left : left + c]
            if self.rng.random() < 0.5:
                x, m = x.flip(-1), m.flip(-1)
            xs.append(x)
            ms.append(m)
        x = torch.stack(xs).float().div_(255.0)
        return x, torch.cat(ms).long()

"""Cross-device round trips: a file encoded on CUDA must decode on a CPU to exactly
the pixels the encoder promised (`EncodeResult.reconstruction`, which is what a
CUDA decode gives), and a file encoded on the CPU must decode on CUDA to exactly
the CPU's pixels. Runs every Kodak image at every quality and prints the counts.

    python scripts/cross_device.py                       # needs CUDA
    python scripts/cross_device.py --json cross.json --deterministic
    python scripts/cross_device.py --cpu-fallback --limit 3   # no GPU: threads instead

Without CUDA, `--cpu-fallback` runs the nearest CPU-only check: encode with one
thread count and torch's deterministic algorithms on, decode with another thread
count and them off (and the other way round), in this one process.

Exit code: 0 every round trip matched, 1 some did not, 2 nothing could run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Side:
    """How one end of a round trip runs: device, CPU threads, deterministic mode."""

    name: str
    device: str
    threads: int | None = None
    deterministic: bool = False


@dataclass
class Trip:
    image: str
    quality: float
    encoder: str
    decoder: str
    ok: bool
    bytes: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    differing_pixels: int = 0
    max_abs_diff: int = 0
    error: str = ""


@dataclass
class Summary:
    attempted: int = 0
    passed: int = 0
    by_direction: dict[str, list[int]] = field(default_factory=dict)  # [passed, attempted]
    same_file_both_devices: int = 0  # informational: encoders may legitimately differ
    compared_files: int = 0


def _apply(side: Side) -> None:
    import torch

    if side.threads:
        torch.set_num_threads(side.threads)
    torch.use_deterministic_algorithms(side.deterministic)
    if side.device == "cuda":
        torch.backends.cudnn.deterministic = side.deterministic
        torch.backends.cudnn.benchmark = False


def _round_trip(codecs: dict, enc: Side, dec: Side, name: str, pixels, quality: float):
    import numpy as np

    _apply(enc)
    start = time.perf_counter()
    result = codecs[enc.device].encode(pixels, quality=quality)
    encode_s = time.perf_counter() - start
    trip = Trip(name, quality, enc.name, dec.name, ok=False, bytes=len(result.data),
                encode_s=round(encode_s, 3))
    _apply(dec)
    start = time.perf_counter()
    try:
        decoded = codecs[dec.device].decode(result.data)
    except Exception as exc:  # noqa: BLE001 - report it and go on with the next trip
        trip.error = f"{type(exc).__name__}: {exc}"
        return trip, result.data
    trip.decode_s = round(time.perf_counter() - start, 3)
    diff = np.abs(decoded.astype(np.int16) - result.reconstruction.astype(np.int16))
    trip.differing_pixels = int(np.count_nonzero(diff.max(axis=2)))
    trip.max_abs_diff = int(diff.max())
    trip.ok = decoded.shape == result.reconstruction.shape and trip.differing_pixels == 0
    return trip, result.data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kodak", type=Path, default=None,
                        help="folder of images (default: $SEGPIC_SHARED/data/kodak)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="weights folder (default: the shipped weights)")
    parser.add_argument("--qualities", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--deterministic", action="store_true",
                        help="torch deterministic algorithms + cuDNN deterministic on CUDA")
    parser.add_argument("--cpu-fallback", action="store_true",
                        help="without CUDA: thread counts and deterministic mode instead")
    parser.add_argument("--threads", type=int, nargs=2, default=[1, 4], metavar=("A", "B"),
                        help="the two CPU thread counts of --cpu-fallback")
    parser.add_argument("--json", type=Path, default=None, help="write every trip here")
    args = parser.parse_args(argv)

    if args.deterministic:  # cuBLAS reads this when CUDA starts
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    sys.path.insert(0, str(REPO))
    from segpic_codec.image_io import load_image
    from segpic_codec.segpic.codec import Codec
    from segpic_codec.shared_data import kodak_dir

    if args.kodak is None:
        args.kodak = kodak_dir(required=False) or Path("kodak")
    images = sorted(p for p in args.kodak.glob("*.png")) if args.kodak.is_dir() else []
    if args.limit:
        images = images[: args.limit]
    if not images:
        print(f"cross_device: no images in {args.kodak}", file=sys.stderr)
        return 2

    if torch.cuda.is_available():
        codecs = {"cpu": Codec.load(args.weights, device="cpu"),
                  "cuda": Codec.load(args.weights, device="cuda")}
        det = args.deterministic
        directions = [(Side("cuda", "cuda", deterministic=det), Side("cpu", "cpu")),
                      (Side("cpu", "cpu"), Side("cuda", "cuda", deterministic=det))]
        mode = f"CUDA ({torch.cuda.get_device_name(0)}) <-> CPU"
    elif args.cpu_fallback:
        codecs = {"cpu": Codec.load(args.weights, device="cpu")}
        a, b = args.threads
        directions = [(Side(f"cpu-{a}t-det", "cpu", a, True), Side(f"cpu-{b}t", "cpu", b)),
                      (Side(f"cpu-{b}t", "cpu", b), Side(f"cpu-{a}t-det", "cpu", a, True))]
        mode = f"no CUDA: CPU {a} threads (deterministic) <-> {b} threads"
    else:
        print("cross_device: CUDA is not available; run on a GPU machine, or pass "
              "--cpu-fallback for the thread-count check", file=sys.stderr)
        return 2

    print(f"cross_device: {mode}; {len(images)} images x {len(args.qualities)} qualities "
          f"x {len(directions)} directions; torch {torch.__version__}", flush=True)
    summary = Summary()
    trips: list[Trip] = []
    for path in images:
        pixels = load_image(path).pixels
        for quality in args.qualities:
            files = []
            for enc, dec in directions:
                trip, data = _round_trip(codecs, enc, dec, path.name, pixels, quality)
                files.append(data)
                trips.append(trip)
                key = f"{enc.name} -> {dec.name}"
                counts = summary.by_direction.setdefault(key, [0, 0])
                counts[1] += 1
                summary.attempted += 1
                if trip.ok:
                    counts[0] += 1
                    summary.passed += 1
                problem = trip.error or (f"{trip.differing_pixels} pixels differ "
                                         f"(max {trip.max_abs_diff})")
                status = "ok" if trip.ok else f"FAIL {problem}"
                print(f"  {path.name} q{quality:g} {key}: {status} "
                      f"({trip.bytes} B, enc {trip.encode_s:.2f} s, dec {trip.decode_s:.2f} s)",
                      flush=True)
            summary.compared_files += 1
            summary.same_file_both_devices += int(files[0] == files[1])

    print(f"\ncross_device: {summary.passed} / {summary.attempted} round trips passed")
    for key, (ok, n) in summary.by_direction.items():
        print(f"  {key}: {ok} / {n}")
    print(f"  identical files from both encoders: {summary.same_file_both_devices} / "
          f"{summary.compared_files} (not required; the decoder only needs the file)")
    if args.json:
        args.json.write_text(json.dumps({"mode": mode, "summary": asdict(summary),
                                         "trips": [asdict(t) for t in trips]}, indent=1))
    return 0 if summary.passed == summary.attempted else 1


if __name__ == "__main__":
    sys.exit(main())

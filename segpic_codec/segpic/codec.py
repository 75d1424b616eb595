"""The Python API: RGB pixels <-> .spic bytes.

    codec = Codec.load()                      # shipped weights, CPU or CUDA
    result = codec.encode(pixels, quality=4)  # or bpp=0.3
    pixels = codec.decode(result.data)

`encode_streams` is the codec contract (`segpic_codec.codecs`): it returns the
payload and streams, and `encode` has them packed into a file there.

Images of any size are padded (edge replication) to the network stride and the
decoder crops back to the size in the header. `EncodeResult.reconstruction` is
exactly what `decode` returns for the same weights on the same device.

The synthesis transform runs in float32 by default: the decoded pixels may then
differ by one level (in a few pixels) between machines, thread counts and from the
encoder's reconstruction, never the file's parsing. `Codec.load(exact=True)` (or
the environment variable SEGPIC_EXACT=1) runs it in float64, as every version did
before: decoded pixels are then a function of the file alone, bit for bit
everywhere, at about three times the decode time on a CPU.

Weights with gain units take any quality in [1, L] on a grid of 1/40; fixed-rate
weights (the authors' SegPIC, one network per level, see `weights/levels.py`) take whole
qualities only: a fractional one is an error, not silently rounded to a level.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..codecs import CodedImage, EncodeResult
from ..devices import select_device
from ..errors import CodecError, SegpicError
from ..heap import between_stages
from ..limits import MAX_DIMENSION
from . import layout as stream_layout
from .config import CONFIGS, DEFAULT_CONFIG, padded_size
from .networks.model import SegPIC
from .networks.quality import quality_to_index
from .options import DEFAULT_GRID
from .weights.folder import WeightsError, default_weights_dir
from .weights.levels import LevelSet
from .weights.loading import load_weights

EXACT_ENV = "SEGPIC_EXACT"


def exact_from_env() -> bool:
    """SEGPIC_EXACT: 1/true/yes/on for the float64 synthesis; unset, empty, 0/false/
    no/off for float32."""
    value = os.environ.get(EXACT_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise CodecError(f"{EXACT_ENV}={value!r}: use 1 (float64 synthesis) or 0")


class Codec:
    def __init__(self, model: SegPIC | LevelSet, weights_id: str,
                 device: torch.device | str = "cpu", exact: bool | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.weights_id = weights_id
        self.model_name = model.config.name
        # float64 synthesis (bit-exact pixels everywhere) instead of float32
        self.exact = exact_from_env() if exact is None else bool(exact)

    @classmethod
    def load(cls, weights: str | Path | None = None, model: str | None = None,
             device: str = "auto", exact: bool | None = None) -> Codec:
        """Load weights: a weights folder/manifest, or the installed weights of
        `model` (default: the default model). If both are given they must agree.
        `exact`: float64 synthesis (default: $SEGPIC_EXACT, else float32)."""
        name = model or DEFAULT_CONFIG
        path = Path(weights) if weights is not None else default_weights_dir(name)
        if weights is None and not (path / "manifest.json").is_file():
            how = ("import the authors' checkpoints there with `segpic import-weights`"
                   if name in CONFIGS and not CONFIGS[name].gain_units
                   else "see README ('Model and weights') to install or train them")
            raise WeightsError(f"no trained weights for model {name!r} at {path}; {how}")
        dev = select_device(device)
        net, manifest = load_weights(path, dev)
        if model is not None and manifest["model"] != model:
            raise WeightsError(f"weights at {path} are for model {manifest['model']!r}, "
                               f"not {model!r}")
        codec = cls(net, manifest["weights_id"], dev, exact=exact)
        if isinstance(net, SegPIC):  # (a LevelSet does it as it loads each level)
            net.coding_only()  # builds the exact entropy path now; no training from here on
        between_stages()  # the file's half-precision tensors and those weights
        return codec

    @classmethod
    def from_model(cls, model: SegPIC, weights_id: str = "00000000",
                   exact: bool | None = None) -> Codec:
        return cls(model, weights_id, next(model.parameters()).device, exact=exact)

    @property
    def num_qualities(self) -> int:
        return self.model.config.num_qualities

    @property
    def fixed_rate(self) -> bool:
        """One network per quality level: qualities are whole numbers."""
        return not self.model.config.gain_units

    @property
    def default_quality(self) -> float:
        """The middle of the range (rounded up to a level for fixed-rate weights)."""
        middle = float(self.num_qualities) / 2 + 0.5
        return float(math.ceil(middle)) if self.fixed_rate else middle

    # ----------------------------------------------------------------- encode
    def encode(self, pixels: np.ndarray, quality: float | None = None, bpp: float | None = None,
               grid: int = DEFAULT_GRID, reconstruct: bool = True) -> EncodeResult:
        """Encode RGB pixels into a .spic file (`encode_streams`, packed). With
        `reconstruct`, also run the decoder's synthesis to return the decoded image
        (costs about one decode): exactly what `decode` returns here (same device
        and thread count), within one level elsewhere unless `exact`."""
        return self.encode_streams(pixels, quality, bpp, reconstruct, grid=grid).result()

    def encode_streams(self, pixels: np.ndarray, quality: float | None = None,
                       bpp: float | None = None, reconstruct: bool = True,
                       grid: int = DEFAULT_GRID) -> CodedImage:
        """Encode RGB pixels -> SegPIC's payload and streams (as `encode`)."""
        if quality is not None and bpp is not None:
            raise CodecError("give either a quality or a target bpp, not both")
        if not 1 <= grid <= stream_layout.MAX_GRID:
            raise CodecError(f"grid must be between 1 and {stream_layout.MAX_GRID}")
        pixels = _check_pixels(pixels)
        if bpp is not None:
            result = self._encode_for_bpp(pixels, bpp, grid)
            quality = result.quality
            if not reconstruct:
                return result
        if quality is None:
            quality = self.default_quality
        return self._encode_at(pixels, self._checked_quality(quality), grid, reconstruct)

    def _checked_quality(self, quality: float) -> float:
        try:
            quality_to_index(quality, self.num_qualities)
        except ValueError as exc:
            raise CodecError(str(exc)) from None
        if self.fixed_rate and quality != int(quality):
            raise CodecError(f"these weights have {self.num_qualities} fixed-rate levels: "
                             f"quality must be a whole number, got {quality:g}")
        return stream_layout.quantize_quality(quality)

    def _encode_at(self, pixels: np.ndarray, quality: float, grid: int,
                   reconstruct: bool = False) -> CodedImage:
        h, w = pixels.shape[:2]
        x = _to_tensor(_pad(pixels), self.device)
        q = quality_to_index(quality, self.num_qualities)
        streams, x_hat = self.model.compress(x, q, grid, reconstruct=reconstruct,
                                             exact=self.exact)
        header = stream_layout.Header(
            model=self.model_name, weights_id=self.weights_id, quality=quality,
            width=w, height=h, grid=grid, exact_entropy=streams.exact_entropy)
        pixels_out = _to_pixels(x_hat, h, w) if x_hat is not None else None
        return CodedImage("segpic", w, h, stream_layout.pack_payload(header),
                          stream_layout.stream_list(streams), quality, pixels_out)

    def quality_grid(self) -> tuple[float, float, float]:
        """(lowest, highest, step) of the qualities a file can hold: the header's
        steps of 1/40, or whole levels for fixed-rate weights. A target
        (`segpic_codec.targets`) is searched over this grid."""
        step = 1.0 if self.fixed_rate else 1.0 / stream_layout.QUALITY_STEPS
        return 1.0, float(self.num_qualities), step

    def _encode_for_bpp(self, pixels: np.ndarray, target: float, grid: int) -> CodedImage:
        """The highest quality whose file (frame without metadata) does not exceed
        `target` bpp: `targets.search`, as `codecs.Encoder.encode` runs it for
        --bpp, --size and --psnr (where the metadata counts too)."""
        from ..targets import QualityGrid, Target, TargetNotMet, Trial, search

        goal = Target("bpp", target)

        def trial(quality: float) -> Trial[CodedImage]:
            coded = self._encode_at(pixels, quality, grid)
            return Trial(quality, float(len(coded.frame())), coded)

        h, w = pixels.shape[:2]
        outcome = search(trial, goal, QualityGrid(*self.quality_grid()), h * w)
        if not outcome.met:
            raise TargetNotMet(f"cannot reach {target} bpp: the lowest quality gives "
                               f"{outcome.best.encoded.bpp:.4f} bpp")
        return outcome.best.encoded

    # ----------------------------------------------------------------- decode
    def decode(self, data: bytes) -> np.ndarray:
        """.spic bytes -> (H, W, 3) uint8 pixels of the size in the header. Any file,
        however damaged or hostile, either decodes or raises a `SegpicError`
        (ContainerError, CodecError, StreamError); the header's pixel count is
        checked against `max_pixels()` before anything is allocated."""
        header, streams = stream_layout.unpack(data)
        if header.model != self.model_name:
            raise CodecError(f"file was made with model {header.model!r}, "
                             f"these weights are {self.model_name!r}")
        if header.weights_id != self.weights_id:
            raise CodecError(f"file was made with weights {header.weights_id}, these are "
                             f"{self.weights_id}; decode it with the weights that made it")
        try:
            q = quality_to_index(header.quality, self.num_qualities)
        except ValueError as exc:
            raise CodecError(str(exc)) from None
        if self.fixed_rate and header.quality != int(header.quality):
            raise CodecError(f"file has quality {header.quality:g}, these fixed-rate weights "
                             "have whole levels only")
        try:
            x_hat = self.model.decompress(streams, q, header.grid, exact=self.exact)
        except (SegpicError, MemoryError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as exc:
            # A file can pass the container checks (even the CRC, which a forger
            # recomputes) and still hold streams the model cannot decode; torch,
            # numpy and constriction then fail with their own errors. Callers get
            # the codec's error type instead; memory exhaustion is left as is
            # (it is about the machine, not the file).
            raise CodecError(f"cannot decode this .spic file ({type(exc).__name__}: "
                             f"{exc})") from exc
        return _to_pixels(x_hat, header.height, header.width)


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 \
            or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise CodecError("pixels must be a (H, W, 3) uint8 array")
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise CodecError("image has no pixels")
    if pixels.shape[0] > MAX_DIMENSION or pixels.shape[1] > MAX_DIMENSION:
        raise CodecError(f"image sides must be at most {MAX_DIMENSION} pixels")
    return pixels


def _pad(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    ph, pw = padded_size(h, w)
    return np.pad(pixels, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")


def _to_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    # (1, 3, H, W) in channels-last memory with a batch stride of H*W*3: a permuted
    # (H, W, 3) view has batch stride 3, which oneDNN does not take for channels-last,
    # so every analysis convolution ran in the slower NCHW layout
    x = torch.from_numpy(np.ascontiguousarray(pixels))[None].permute(0, 3, 1, 2)
    return x.to(device=device, dtype=torch.float32).div_(255.0)


def _to_pixels(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    """The synthesis' output -> (h, w, 3) uint8. Works in place: x_hat is the
    caller's to give up (a 4K image's is 100 MB, and each out-of-place step
    another 100)."""
    # NaN/inf (only a hostile stream can make the synthesis overflow) would be cast
    # to uint8 in a device-dependent way; pin them so every device agrees.
    x = torch.nan_to_num_(x_hat[0, :, :h, :w], nan=0.0, posinf=1.0, neginf=0.0)
    x = x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return np.ascontiguousarray(x.permute(1, 2, 0).cpu().numpy())

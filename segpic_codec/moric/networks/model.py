"""One image's MoRIC decoder as a differentiable module: latents, ARM,
upsampling, synthesis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..bitstream.canvas import Canvas
from ..bitstream.roi import kept_latents
from .arm import Arm, arm_macs_per_latent, canvas_rate_bits
from .arm_rate import fused_rate_bits, fused_rate_bits_and_grads
from .banded import HALO, GmnCache, squared_error, squared_error_value, synthesize
from .latents import LatentCanvas, QuantizerMode, split_grids
from .regions import RegionMap
from .synthesis import Synthesis, pixel_coordinates
from .upsampling import Upsampling


@dataclass(frozen=True)
class Architecture:
    """What the decoder must know to rebuild the networks (stored in the header)."""

    features: int = 16  # GMN width F
    activation: str = "gelu"
    regions: int = 1


# Above this size the synthesis runs in bands of rows (bounded memory; slightly
# slower than whole-image tensors when those fit).
BANDED_MIN_PIXELS = 1 << 21


class MoricModel(nn.Module):
    """`labels`: the (H, W) region of each pixel (0..arch.regions-1), as the
    decoder rebuilds it from the contour stream; None for one region.
    `object_only`: single-object coding, region 0 is not coded (not drawn, and
    the latents only it needs are left out, see `roi`)."""

    def __init__(self, height: int, width: int, arch: Architecture, latent_gain: float = 16.0,
                 seed: int = 0, labels: np.ndarray | None = None, object_only: bool = False):
        super().__init__()
        if labels is None:
            if arch.regions != 1:
                raise ValueError("a partition of several regions needs its labels")
            self.regions = RegionMap.single(height, width)
        else:
            if labels.shape != (height, width):
                raise ValueError(f"labels {labels.shape} do not match a {width}x{height} image")
            drawn = set(range(1, arch.regions)) if object_only else None
            self.regions = RegionMap(labels, arch.regions, drawn)
        self.object_only = object_only
        generator = torch.Generator().manual_seed(seed)
        self.height, self.width, self.arch = height, width, arch
        self.canvas = Canvas(height, width)
        self.keep = kept_latents(self.regions.labels != 0, self.canvas) if object_only else None
        self.latents = LatentCanvas(self.canvas, latent_gain, self.keep)
        # pixels whose error counts: all, or the object's
        self.drawn_pixels = int((self.regions.labels != 0).sum()) if object_only \
            else height * width
        self.arm = Arm(generator)
        self.upsampling = Upsampling(self.canvas.num_grids)
        self.synthesis = Synthesis(arch.features, arch.activation, arch.regions, generator)
        start = self.canvas.query_range[0]
        index = self.canvas.latent_index if self.keep is None else np.flatnonzero(self.keep)
        self.register_buffer("latent_positions", torch.from_numpy(index - start),
                             persistent=False)
        self.register_buffer("coords", pixel_coordinates(height, width), persistent=False)

    # modules whose parameters are quantised and sent, in stream order
    def sent_modules(self) -> dict[str, nn.Module]:
        return {"arm": self.arm, "upsampling": self.upsampling,
                "gmn": self.synthesis.gmn, "lsn": self.synthesis.lsns}

    def network_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.sent_modules().values() for p in m.parameters()]

    def dense_latents(self, quantized_canvas: Tensor) -> Tensor:
        """Quantised canvas -> (7, N) upsampled latents."""
        grids = split_grids(quantized_canvas, self.canvas)
        return self.upsampling(grids).reshape(len(grids), -1)

    def banded(self, dense: Tensor) -> bool:
        return dense.device.type == "cpu" and self.height * self.width >= BANDED_MIN_PIXELS

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001 - nn.Module's hook for .to()
        module = super()._apply(fn, *args, **kwargs)
        self.regions = self.regions.to(self.coords.device)
        return module

    def decode_latents(self, quantized_canvas: Tensor, only: set[int] | None = None) -> Tensor:
        """Quantised canvas -> (3, N) image: the decoder's float path (without
        autograd in bands of rows for large images on a CPU). `only`: draw
        just these regions (layered decoding; other pixels are zero), and
        run the GMN only on the rows they span."""
        dense = self.dense_latents(quantized_canvas)
        regions = self.regions if only is None else self.regions.drawing(only)
        if only is None and self.object_only:
            only = regions.only  # an object-only decode draws the object's rows
        if self.banded(dense):
            return synthesize(self.synthesis, dense, self.coords, self.height, self.width,
                              regions, regions.row_range())
        if only is None:
            return self.synthesis(dense, self.coords, self.height, self.width,
                                  split=regions.split())
        r0, r1 = regions.row_range()
        out = dense.new_zeros(3, self.height * self.width)
        if r1 > r0:
            i0, i1, w = max(0, r0 - HALO), min(self.height, r1 + HALO), self.width
            out[:, r0 * w: r1 * w] = self.synthesis(
                dense[:, i0 * w: i1 * w], self.coords[:, r0 * w: r1 * w], i1 - i0, w,
                crop=(r0 - i0, i1 - r1), split=regions.split(r0, r1))
        return out

    def squared_error(self, quantized_canvas: Tensor, target: Tensor,
                      dense: Tensor | None = None) -> Tensor:
        """Sum of squared errors (scalar) of the decoded image against target
        (`dense`: the upsampled latents, if already known)."""
        if dense is None:
            dense = self.dense_latents(quantized_canvas)
        if self.banded(dense):
            return squared_error(self.synthesis, dense, self.coords, target, self.height,
                                 self.width, self.regions)
        image = self.synthesis(dense, self.coords, self.height, self.width,
                               split=self.regions.split())
        return torch.sum((image - target) ** 2)

    def squared_error_value(self, target: Tensor, dense: Tensor, workers: int = 1,
                            cache: GmnCache | None = None) -> Tensor:
        """`squared_error` from the upsampled latents, without gradients. On a
        CPU in bands at any size, on up to `workers` threads (the same bits as
        the banded `squared_error`); `cache`: see `banded.squared_error_value`."""
        if dense.device.type == "cpu":
            return squared_error_value(self.synthesis, dense, self.coords, target, self.height,
                                       self.width, self.regions, workers, cache)
        with torch.no_grad():
            image = self.synthesis(dense, self.coords, self.height, self.width,
                                   split=self.regions.split())
            return torch.sum((image - target) ** 2)

    def rate_bits(self, quantized_canvas: Tensor) -> Tensor:
        """Total bits of the latents (scalar). On a CPU the fused, cache-blocked
        version (`arm_rate`); elsewhere plain autograd, which suits a GPU."""
        if quantized_canvas.device.type == "cpu":
            return fused_rate_bits(self.arm, quantized_canvas, self.canvas,
                                   self.latents.mask.reshape(-1))
        return canvas_rate_bits(self.arm, quantized_canvas, self.canvas,
                                self.latent_positions).sum()

    def rate_bits_and_grads(self, quantized_canvas: Tensor, weight: float, want_canvas: bool
                            ) -> tuple[Tensor, Tensor | None, list[Tensor]]:
        """CPU: (total bits, gradient of weight * bits by the canvas (None unless
        want_canvas), by the ARM's parameters), in one pass (`arm_rate`)."""
        return fused_rate_bits_and_grads(self.arm, quantized_canvas, self.canvas,
                                         self.latents.mask.reshape(-1), weight, want_canvas)

    def forward(self, target: Tensor, mode: QuantizerMode, temperature: float = 0.3,
                noise: float = 0.0, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
        """-> (mean squared error against target (3, N), total latent bits)."""
        q = self.latents.quantized(mode, temperature, noise, generator)
        return self.squared_error(q, target) / (3 * self.drawn_pixels), self.rate_bits(q)

    def macs_per_pixel(self) -> dict[str, float]:
        latents_per_pixel = self.canvas.num_latents / (self.height * self.width)
        return {
            "arm": arm_macs_per_latent() * latents_per_pixel,
            "upsampling": self.upsampling.macs_per_pixel(self.canvas.num_grids),
            "gmn": float(self.synthesis.gmn.macs_per_pixel()),
            "lsn": float(self.synthesis.lsns[0].macs_per_pixel()),
        }

"""SegPIC: the network of Fig. 2 and its two mirrored paths.

    x -> g_a1 (2 down blocks + WAM) -> y1 --MAP--> p' --prototype stream--> p'^
    y1 -> RAT_enc(p'^) -> g_a2 (2 down blocks + WAM) -> y --gain(q)--> y'
    y' --MAP--> p --prototype stream--> p^
    y' -> RAT -> h_a -> z --z stream--> z^ -> h_s -> RAT(p^) -> means, scales
    y' --ChARM, 10 y streams--> y'^ --inverse gain(q)--> y^
    y^ -> g_s0 (WAM + 2 up blocks) -> RAT_dec(p'^) -> g_s1 (WAM + 2 up blocks) -> x^

`forward` is the training path (any partition: masks or grid). `compress` and
`decompress` are the bitstream path (grid partition): everything that the
decoder must reproduce exactly to parse the y streams (prototype synthesis of p,
the hyper-synthesis, the region-adapted entropy parameters, the ChARM steps)
runs on the CPU on one of the two paths of `entropy_paths`, on both sides: the
exact path (integer fixed point, the same bits on every machine; every new
file) or the float64 path of files made before it (the same bits on machines
whose BLAS sums in the same order). The synthesis transform (y^ -> pixels) runs
in float32 by default: its result differs in the last bits between devices and
thread counts, which moves a few decoded pixels by one level at most
(tests/test_reliability.py and tests/test_shipped_weights.py check that bound),
never the parsing of a file. With `exact=True` it runs on a float64
copy instead, and the decoded pixels are a function of the file alone.

A configuration without gain units (`segpic`, the authors' fixed-rate design) has
unit gains and ignores q: it is one network for one lambda, and a weights folder
holds one such network per quality level (`levels.LevelSet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...entropy.entropy_models import float64_copy
from ...entropy.range_coding import GAUSSIAN_RANGE, decode_gaussian, encode_gaussian
from ...heap import between_stages
from ..config import ModelConfig
from ..layout import CodedStreams
from .bands import (
    BAND_MARGIN,
    analysis_g_a1,
    attention_in_bands,
    band_rows,
    banded,
    rat_in_bands,
    up_blocks_in_bands,
)
from .charm import ChannelARCodec
from .densities import MedianFactorizedDensity
from .entropy_paths import EntropyPath, entropy_path
from .hyperprior import HyperpriorCodec
from .layers import DownBlock, UpBlock, WindowAttentionModule, conv1x1
from .prototype_stream import PrototypeCodec
from .quality import make_gain
from .rat import RegionAdaptiveTransform
from .regions import Partition, grid_partition, mask_partition, masked_average_pool


def _only_present(log_likelihoods: torch.Tensor, partition: Partition) -> torch.Tensor:
    """Empty region slots cost no rate (their likelihood counts as 1)."""
    if partition.present is None:
        return log_likelihoods
    return torch.where(partition.present[:, None], log_likelihoods,
                       torch.zeros_like(log_likelihoods))


# the modules of the synthesis transform (y^ -> pixels), keys of CodingState.synthesis
SYNTHESIS_MODULES = ("transform_prototypes", "y_gain", "g_s0", "rat_decoder", "g_s1")


@dataclass
class CodingState:
    """What the bitstream path derives from the weights (see SegPIC._coding)."""

    device: torch.device
    # the entropy paths, by `exact_entropy`, each made on first use
    paths: dict[bool, EntropyPath] = field(default_factory=dict)
    # float64 copies of the synthesis modules on `device`, made on first exact use
    synthesis64: nn.ModuleDict | None = None


class SegPIC(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = c = config

        def wam(ch: int, window: int) -> nn.Module:
            shift = window // 2 if c.attn_shift else 0
            return WindowAttentionModule(ch, c.attn_heads, window, shift) if c.use_attention \
                else nn.Identity()

        def up(cin: int, cout: int) -> UpBlock:
            return UpBlock(cin, cout, inverse_gdn=c.up_gdn == "inverse")

        self.g_a1 = nn.Sequential(DownBlock(3, c.N), DownBlock(c.N, c.N),
                                  wam(c.N, c.attn_window_mid))
        self.g_a2 = nn.Sequential(DownBlock(c.N, c.N), DownBlock(c.N, c.M),
                                  wam(c.M, c.attn_window_latent))
        self.g_s0 = nn.Sequential(wam(c.M, c.attn_window_latent), up(c.M, c.N), up(c.N, c.N))
        self.g_s1 = nn.Sequential(wam(c.N, c.attn_window_mid), up(c.N, c.N),
                                  up(c.N, c.decoder_out_channels),
                                  conv1x1(c.decoder_out_channels, 3))
        self.rat_encoder = RegionAdaptiveTransform(c.N, c.N)
        self.rat_decoder = RegionAdaptiveTransform(c.N, c.N)
        self.transform_prototypes = PrototypeCodec(
            c.proto_enc_channels, c.lambdas, c.proto_synthesis_widths, c.median_offsets,
            c.gain_units)
        self.entropy_prototypes = PrototypeCodec(
            c.proto_ent_channels, c.lambdas, None, c.median_offsets, c.gain_units)
        self.y_gain = make_gain(c.gain_units, c.lambdas, c.M)
        self.hyperprior = HyperpriorCodec(c.M, c.Z, c.hyper_hidden, c.M, c.lambdas,
                                          c.hyper_upsample, c.median_offsets, c.gain_units)
        self.charm = ChannelARCodec(c.M, c.num_slices, c.max_support_slices, c.charm_hidden)
        self._coding_state: CodingState | None = None
        self._coding_only = False

    # ------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor, q: float, masks: torch.Tensor | None = None,
                grid: int = 4) -> dict:
        """x in [0, 1], (B, 3, H, W) with H, W multiples of 64; q a gain index in
        [0, num_qualities - 1]; masks (B, H, W) integer label maps or None (grid)."""
        if self._coding_only:
            raise RuntimeError("this network was loaded for coding only (Codec.load); "
                               "load its weights with loading.load_weights to run it")
        b, _, H, W = x.shape
        y1 = self.g_a1(x)
        part_mid = self._partition(masks, b, H // 4, W // 4, grid, x.device)
        part_lat = self._partition(masks, b, H // 16, W // 16, grid, x.device)

        with torch.autocast(device_type=x.device.type, enabled=False):
            p1_hat, p1_lik = self.transform_prototypes(
                masked_average_pool(y1, part_mid), q)
            p1_lik = _only_present(p1_lik, part_mid)
        y = self.g_a2(self.rat_encoder(y1, p1_hat, part_mid))

        with torch.autocast(device_type=x.device.type, enabled=False):
            gain, inverse_gain = self.y_gain(q)
            y = y.float() * gain.view(1, -1, 1, 1)
            p2_hat, p2_lik = self.entropy_prototypes(masked_average_pool(y, part_lat), q)
            p2_lik = _only_present(p2_lik, part_lat)
            means, scales, z_lik = self.hyperprior(y, p2_hat, part_lat, q)
            y_hat, y_lik = self.charm(y, means, scales)
            y_hat = y_hat * inverse_gain.view(1, -1, 1, 1)

        x_hat = self.g_s1(self.rat_decoder(self.g_s0(y_hat), p1_hat, part_mid))
        return {
            "x_hat": x_hat,
            "log_likelihoods": {"y": y_lik, "z": z_lik, "p_transform": p1_lik,
                                "p_entropy": p2_lik},
        }

    def quantile_loss(self) -> torch.Tensor:
        """CompressAI's auxiliary loss that places the median offsets of z, p' and p
        (0 for a model without them); optimise it on `quantiles` only."""
        loss = torch.zeros((), device=self.device)
        for density in (self.transform_prototypes.density, self.entropy_prototypes.density,
                        self.hyperprior.density):
            if isinstance(density, MedianFactorizedDensity):
                loss = loss + density.quantile_loss()
        return loss

    @staticmethod
    def _partition(masks: torch.Tensor | None, b: int, h: int, w: int, grid: int,
                   device: torch.device) -> Partition:
        if masks is None:
            return grid_partition(b, h, w, grid, device, compact=False)
        return mask_partition(masks, h, w)

    # -------------------------------------------------------------- bitstream
    def coding_only(self) -> None:
        """Build the exact entropy path now (what new files use) and refuse from now
        on to train, to run `forward`, to move to another device or to rebuild the
        coding state: for a network loaded only to code (`Codec.load`). The float32
        weights stay: a file without the `exact_entropy` flag builds its float64
        path from them on first use."""
        self._entropy_path(True)
        self._coding_only = True

    def _coding(self) -> CodingState:
        """Derived state for the bitstream path, made on first use per device."""
        dev = self.device
        if self._coding_state is None or self._coding_state.device != dev:
            if self._coding_only:
                raise RuntimeError("a network loaded for coding only cannot rebuild its "
                                   "coding state (new weights or another device)")
            self._coding_state = CodingState(device=dev)
        return self._coding_state

    def _entropy_path(self, exact_entropy: bool) -> EntropyPath:
        paths = self._coding().paths
        if exact_entropy not in paths:
            paths[exact_entropy] = entropy_path(self, exact_entropy)
        return paths[exact_entropy]

    def _synthesis(self, exact: bool) -> nn.ModuleDict | nn.Module:
        """The synthesis modules: this network's own (float32), or with `exact` their
        float64 copies (made on first use)."""
        if not exact:
            return self
        st = self._coding()
        if st.synthesis64 is None:
            own = nn.ModuleDict({name: getattr(self, name) for name in SYNTHESIS_MODULES})
            st.synthesis64 = float64_copy(own, st.device)
        return st.synthesis64

    def invalidate_coding_state(self) -> None:
        """Call after changing weights: coding tables are derived from them."""
        self._coding_state = None

    def load_state_dict(self, *args, **kwargs):  # type: ignore[override]
        self.invalidate_coding_state()
        return super().load_state_dict(*args, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def compress(self, x: torch.Tensor, q: float, grid: int, reconstruct: bool = True,
                 exact: bool = False, exact_entropy: bool = True
                 ) -> tuple[CodedStreams, torch.Tensor | None]:
        """x (1, 3, H, W) in [0, 1], H and W multiples of 64. Returns the streams and,
        if `reconstruct`, the reconstruction the decoder will produce (`decompress`
        with the same `exact` on the same device and thread count; within one level
        of it elsewhere, exactly with `exact`). `exact_entropy` (every new file)
        computes the entropy parameters on the exact path (`entropy_paths`);
        without it, on the float64 path of earlier versions."""
        path = self._entropy_path(exact_entropy)
        _, _, H, W = x.shape
        rows = band_rows(W // 4)
        h, w = H // 16, W // 16
        dev = x.device
        part_mid = grid_partition(1, H // 4, W // 4, grid, dev)
        part_lat = grid_partition(1, h, w, grid, dev)
        part_lat_cpu = grid_partition(1, h, w, grid, "cpu")

        # analysis side (encoder only, any precision): symbols of p', y, p, z; the
        # transforms run channels-last (faster convolutions on the CPU)
        x = x.contiguous(memory_format=torch.channels_last)
        y1 = analysis_g_a1(self.g_a1, x, rows)
        p1_sym = path.p_transform.clamp(self.transform_prototypes.analyze(
            masked_average_pool(y1, part_mid), q))
        p1_hat = self.transform_prototypes.synthesize(p1_sym, q)
        y = self.g_a2(rat_in_bands(self.rat_encoder, y1, p1_hat, part_mid, rows, False))
        del x, y1  # the largest maps of the analysis: not kept through the synthesis
        between_stages()
        # back to contiguous NCHW: the float64 entropy-parameter path below must see
        # the layout the decoder's has (another layout sums in another order)
        y = y.contiguous()
        gain, _ = self.y_gain(q)
        y = y * gain.view(1, -1, 1, 1)
        p2_sym = path.p_entropy.clamp(self.entropy_prototypes.analyze(
            masked_average_pool(y, part_lat), q)).cpu()
        p2_hat = path.prototypes(p2_sym, q)
        z_sym = path.z.clamp(self.hyperprior.analyze(
            y, path.values(p2_hat).to(dev, y.dtype), part_lat, q)).cpu()

        # the decoder's entropy-parameter path, on the CPU
        params = path.hyper(z_sym, p2_hat, part_lat_cpu, q)
        y64 = y.to("cpu", torch.float64)
        decoded: list[torch.Tensor] = []
        y_streams = []
        for i, y_slice in enumerate(y64.chunk(self.config.num_slices, dim=1)):
            mu, scale = path.slice_params(i, params, decoded)
            sym = torch.round(y_slice - path.values(mu)).clamp(-GAUSSIAN_RANGE, GAUSSIAN_RANGE)
            y_streams.append(encode_gaussian(sym.numpy().astype(np.int32), path.stds(scale)))
            decoded.append(path.finish_slice(i, params, decoded, sym, mu))

        streams = CodedStreams(
            prototype_streams=[path.p_transform.encode(p1_sym), path.p_entropy.encode(p2_sym)],
            z_stream=path.z.encode(z_sym.permute(0, 2, 3, 1).reshape(-1, z_sym.shape[1])),
            y_streams=y_streams,
            latent_height=h,
            latent_width=w,
            exact_entropy=exact_entropy,
        )
        if not reconstruct:
            return streams, None
        y_hat = [path.values(d) for d in decoded]
        return streams, self._synthesize(y_hat, p1_sym, part_mid, q, exact)

    @torch.no_grad()
    def decompress(self, streams: CodedStreams, q: float, grid: int, exact: bool = False
                   ) -> torch.Tensor:
        """-> reconstruction (1, 3, 16h, 16w), unclipped; float32, or float64 and a
        function of the file alone with `exact`."""
        path = self._entropy_path(streams.exact_entropy)
        h, w = streams.latent_height, streams.latent_width
        part_mid = grid_partition(1, 4 * h, 4 * w, grid, self.device)
        part_lat_cpu = grid_partition(1, h, w, grid, "cpu")
        if len(streams.y_streams) != self.config.num_slices:
            raise ValueError("wrong number of y streams for this model")

        p1_sym = path.p_transform.decode(streams.prototype_streams[0], part_mid.num_regions)
        p2_sym = path.p_entropy.decode(streams.prototype_streams[1], part_lat_cpu.num_regions)
        p2_hat = path.prototypes(p2_sym, q)
        zh, zw = h // 4, w // 4
        z_sym = path.z.decode(streams.z_stream, zh * zw)
        # contiguous NCHW, as on the encoder side: on the float path a channels-last
        # view would make the convolutions sum in another order and the entropy
        # parameters differ in the last bits from the encoder's
        z_sym = z_sym.view(1, zh, zw, -1).permute(0, 3, 1, 2).contiguous()
        params = path.hyper(z_sym, p2_hat, part_lat_cpu, q)

        decoded: list[torch.Tensor] = []
        shape = (1, self.config.slice_channels, h, w)
        for i in range(self.config.num_slices):
            mu, scale = path.slice_params(i, params, decoded)
            sym = decode_gaussian(streams.y_streams[i], path.stds(scale))
            sym = torch.from_numpy(sym.astype(np.int64)).view(shape)
            decoded.append(path.finish_slice(i, params, decoded, sym, mu))
        between_stages()  # the entropy path's buffers, before the synthesis' own
        return self._synthesize([path.values(d) for d in decoded], p1_sym, part_mid, q, exact)

    def _synthesize(self, decoded: list[torch.Tensor], p1_sym: torch.Tensor,
                    part_mid: Partition, q: float, exact: bool = False) -> torch.Tensor:
        """The synthesis transform, in float32 or, with `exact`, in float64: the
        decoded pixels are then a function of the file alone (float32 results differ
        in the last bits between devices and thread counts, which moves some pixels
        by one level)."""
        net = self._synthesis(exact)
        dev = self.device
        p1_hat = net.transform_prototypes.synthesize(p1_sym.to(dev), q)
        _, inverse_gain = net.y_gain(q)
        y_hat = torch.cat(decoded, dim=1).to(dev, inverse_gain.dtype)
        y_hat = y_hat * inverse_gain.view(1, -1, 1, 1)
        if not exact:  # channels-last: faster float32 convolutions on the CPU
            y_hat = y_hat.contiguous(memory_format=torch.channels_last)
        mid = net.g_s0(y_hat)
        rows = band_rows(mid.shape[3], exact)
        mid = rat_in_bands(net.rat_decoder, mid, p1_hat, part_mid, rows, exact)
        between_stages()
        if exact:  # the bands every earlier version used: their pixels, bit for bit
            return banded(net.g_s1, mid, rows, BAND_MARGIN, step_out=4)
        mid = attention_in_bands(net.g_s1, mid, rows)  # (rebinding frees the input)
        between_stages()
        return up_blocks_in_bands(net.g_s1, mid)

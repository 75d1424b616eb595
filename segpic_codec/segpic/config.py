"""Model configurations.

Every configuration runs through the same code path (`segpic_codec.segpic.networks.model.SegPIC`);
they differ in widths and in a few structural options. `segpic` is the paper's
model exactly as the authors' code builds it (N=192, M=320, 83,503,971 parameters,
one fixed-rate network per lambda, see `segpic import-weights`); `small` is the
default that ships with trained weights, `tiny` exists for tests. `small` and
`tiny` keep the structure the shipped weights were trained with (the option
defaults below).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The paper's MSE lambdas (Sec. 4.1), one per quality level, lowest rate first.
PAPER_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    N: int  # channels of the analysis/synthesis transforms
    M: int  # channels of the latent y
    Z: int  # channels of the hyper-latent z
    num_slices: int = 10  # channel-wise autoregressive slices of y
    max_support_slices: int = 5  # how many decoded slices condition the next one
    # hidden widths of the three ChARM transforms (mean, scale, LRP) of each slice
    charm_hidden: tuple[int, ...] = (224, 176, 128, 64)
    # hidden widths of the hyper-analysis between M and Z (Table 4 of the paper)
    hyper_hidden: tuple[int, ...] = (288, 256, 224)
    # prototype coder widths (Fig. 4): {C1..C4} for p' (from N) and for p (from M)
    proto_enc_channels: tuple[int, ...] = (192, 128, 96, 96)
    proto_ent_channels: tuple[int, ...] = (320, 192, 128, 96)
    attn_heads: int = 8
    attn_window_mid: int = 8  # window of the attention blocks at 1/4 resolution
    attn_window_latent: int = 4  # window of the attention blocks at 1/16 resolution
    use_attention: bool = True
    decoder_out_channels: int = 32  # the last up-block outputs this, a 1x1 conv maps to RGB
    lambdas: tuple[float, ...] = field(default=PAPER_LAMBDAS)
    # Structural options: the defaults are the structure `small`/`tiny` were trained
    # with, the other value is the authors' (GityuxiLiu/SegPIC-for-Image-Compression).
    # hyper-synthesis 2x upsampling: "tconv" (3x3 transposed conv) or "subpel"
    # (3x3 conv to 4x channels + PixelShuffle)
    hyper_upsample: str = "tconv"
    # normalisation after the transposed conv of the up blocks: "inverse" (IGDN) or
    # "forward" (GDN, the paper's Fig. 2c)
    up_gdn: str = "inverse"
    # shift the attention windows by half a window (Swin's shifted windows + mask)
    attn_shift: bool = False
    # p' synthesis widths (from the latent to N); None mirrors proto_enc_channels
    proto_enc_synthesis: tuple[int, ...] | None = None
    # quantize z, p' and p around a learned per-channel median (CompressAI's
    # `quantiles`) instead of around 0
    median_offsets: bool = False
    # True: one network for every lambda, with per-quality gain units (variable rate).
    # False: no gain units; one network per lambda (a weights folder holds one per
    # quality level, see weights/folder.py) and qualities are whole numbers.
    gain_units: bool = True

    @property
    def slice_channels(self) -> int:
        return self.M // self.num_slices

    @property
    def num_qualities(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        clean = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown model config field {key!r}")
            clean[key] = tuple(value) if isinstance(value, list) else value
        return cls(**clean)

    def validate(self) -> None:
        if self.M % self.num_slices:
            raise ValueError(f"M={self.M} must be divisible by num_slices={self.num_slices}")
        if self.proto_enc_channels[0] != self.N or self.proto_ent_channels[0] != self.M:
            raise ValueError("prototype coder input widths must equal N and M")
        if self.N % self.attn_heads or self.M % self.attn_heads:
            raise ValueError("N and M must be divisible by attn_heads")
        synth = self.proto_synthesis_widths
        if synth[0] != self.proto_enc_channels[-1] or synth[-1] != self.N:
            raise ValueError("p' synthesis widths must run from the p' latent width to N")
        if self.hyper_upsample not in ("tconv", "subpel"):
            raise ValueError(f"hyper_upsample must be 'tconv' or 'subpel', "
                             f"not {self.hyper_upsample!r}")
        if self.up_gdn not in ("inverse", "forward"):
            raise ValueError(f"up_gdn must be 'inverse' or 'forward', not {self.up_gdn!r}")

    @property
    def proto_synthesis_widths(self) -> tuple[int, ...]:
        """Widths of the p' synthesis, from its latent to N."""
        if self.proto_enc_synthesis is not None:
            return tuple(self.proto_enc_synthesis)
        return tuple(reversed(self.proto_enc_channels))


# The stride of the whole network: four stride-2 stages to y, two more to z.
STRIDE = 64


def padded_size(h: int, w: int) -> tuple[int, int]:
    """The image size the network sees: each side rounded up to the stride."""
    return -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE

CONFIGS: dict[str, ModelConfig] = {
    "segpic": ModelConfig(
        name="segpic", N=192, M=320, Z=192,
        hyper_upsample="subpel", up_gdn="forward", attn_shift=True,
        proto_enc_synthesis=(96, 128, 192, 192), median_offsets=True, gain_units=False,
    ),
    "small": ModelConfig(
        name="small",
        N=128,
        M=160,
        Z=96,
        charm_hidden=(64, 48, 32),
        hyper_hidden=(144, 128, 112),
        proto_enc_channels=(128, 96, 64, 64),
        proto_ent_channels=(160, 128, 96, 64),
        decoder_out_channels=32,
    ),
    "tiny": ModelConfig(
        name="tiny",
        N=16,
        M=20,
        Z=8,
        charm_hidden=(8,),
        hyper_hidden=(16, 12, 8),
        proto_enc_channels=(16, 8, 4),
        proto_ent_channels=(20, 8, 4),
        attn_heads=4,
        decoder_out_channels=8,
    ),
}

DEFAULT_CONFIG = "small"


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(CONFIGS))}"
        ) from None

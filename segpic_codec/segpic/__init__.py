"""SegPIC (Liu et al., ECCV 2024): the amortised codec, a network trained once.

An image is coded by one forward pass of a network trained on many images:
region prototypes and the latents of a region-adaptive transform, each coded
with a learned entropy model. The parts:

    codec.py        the API: `Codec` (RGB pixels <-> .spic bytes)
    frontend.py     SegPIC behind the codec-neutral API (`segpic_codec.codecs`)
    layout.py       the header payload and stream order; what `segpic info` shows
    config.py       the model configurations (widths, lambdas, padding stride)
    options.py      its options, declared once (read by the CLI, API, batch, Pillow)
    networks/       the network in torch: transforms, regions, RAT, the prototype,
                    z and y streams, gain units, banded stages, and the model
    weights/        weights on disk (folders, fixed-rate levels, loading) and the
                    authors' checkpoints (widths, key mapping, import, trace)
    training/       training data and crops, the training loop, RD evaluation

`layout`, `config` and `options` import no torch, so `segpic info` stays fast;
this `__init__` imports nothing.
"""

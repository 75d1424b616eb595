"""SegPIC (Liu et al., ECCV 2024): the amortised codec, a network trained once.

Data flow: `layers`/`rat`/`regions` (transforms) -> `prototype_stream`,
`hyperprior`, `charm` (latent codecs) -> `model` (the network) -> `codec`
(pixels <-> .spic) with `layout` (its header payload and streams), `weights`,
`quality`; training in `data` and `train`; `options` (its declared
options) and `frontend` plug it into `segpic_codec.codecs`.
"""

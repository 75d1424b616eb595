"""MoRIC (NeurIPS 2025): an overfitted image codec of the Cool-Chic family.

Every image is encoded by optimising its own small decoder: hierarchical latent
grids, an autoregressive entropy model (ARM), learned upsampling and a synthesis
made of a shared Global Modulation Network and one Local Synthesis Network per
region. The parts:

    codec.py        the API: `encode` (pixels -> payload + streams), `decode`
    decoder/        the decoder in numpy (no torch): integer upsampling and
                    synthesis, and the float32 path of older files
    frontend.py     MoRIC behind the codec-neutral API (`segpic_codec.codecs`)
    layout.py       the header payload and stream order; what `segpic info` shows
    file_format.py  the format's constants and header record, defined once
    errors.py       the errors a caller's input can raise
    options.py      its options, declared once (read by the CLI, API, batch, Pillow)
    measure.py      what `segpic bench speed` needs from MoRIC's insides
    networks/       the decoder's networks in torch (latents, ARM, upsampling,
                    synthesis, regions) and the model that joins them
    training/       the encoder's optimisation (recipes, loss, SOAP, the loop)
    bitstream/      the latent canvas, integer ARM, latent and parameter streams
    contours/       the region partition and its contour stream

`layout`, `file_format`, `contours`, `decoder` and `bitstream` (but
`param_quant`) import no torch, so `segpic info` and `segpic decode` stay fast;
this `__init__` imports nothing.
"""

"""What a MoRIC file holds beyond its header, and how it is coded: the latent
canvas and its decoding order, the integer ARM and its probability tables, the
latent streams, the quantised and coded network parameters, and the
per-region summary `segpic info` prints. All torch-free but `param_quant`,
so the header and stream tools stay light; this `__init__` imports nothing."""

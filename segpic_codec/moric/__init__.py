"""MoRIC (NeurIPS 2025): an overfitted image codec of the Cool-Chic family.

Every image is encoded by optimising its own small decoder: hierarchical latent
grids, an autoregressive entropy model (ARM), learned upsampling and a synthesis
made of a shared Global Modulation Network and Local Synthesis Networks (one
region for now). The API is `segpic_codec.moric.codec` (`encode`, `decode`);
`segpic_codec.moric.layout` reads headers without importing torch, so this
package's `__init__` imports nothing heavy.
"""

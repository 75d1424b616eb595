"""MoRIC's decoder networks in torch, as training fits them: the latent grids,
the ARM (entropy model), the upsampling, the synthesis (GMN and one LSN per
region) and `model.MoricModel`, which puts them together for one image.
Imports nothing itself, so importing a submodule costs only that submodule."""

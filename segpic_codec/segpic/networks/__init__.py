"""SegPIC's network in torch, as Fig. 2 of the paper draws it: the transforms
(`layers`, `rat`, `regions`), the prototype, z and y streams
(`prototype_stream`, `hyperprior`, `charm`, `densities`), the gain units of
variable rate (`quality`), the stages computed in bands of rows (`bands`,
`conv_bands`) and `model.SegPIC`, which joins them. Imports nothing itself, so
importing a submodule costs only that submodule."""

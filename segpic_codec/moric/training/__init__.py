"""The encoder's per-image optimisation: recipes (presets), the SOAP optimiser,
the CPU training loss and the optimisation loop. Used only when encoding;
this `__init__` imports nothing."""

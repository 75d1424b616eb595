"""Entropy coding shared by the codecs: constriction range coding and the
learned entropy models (factorized density, Gaussian scale table)."""

"""segpic: learned image codecs with real .spic bitstreams: SegPIC (ECCV 2024,
amortised) and MoRIC (overfitted to each image).

Entry points: `segpic_codec.codecs` (the Python API: `encode`, `decode`,
`describe`, for either codec), the Pillow plugin `segpic_codec.pillow`, and the
`segpic` command (`segpic_codec.cli`). See README.md.
"""

__version__ = "0.1.0"

"""segpic: the SegPIC learned image codec (ECCV 2024) with real .spic bitstreams.

Entry points: `segpic_codec.codec.Codec` (Python API) and the `segpic` command
(`segpic_codec.cli`). See README.md.
"""

__version__ = "0.1.0"

"""`python -m segpic_codec.bench`: the same command as `segpic bench`."""

from .command import bench

bench(prog_name="segpic bench")

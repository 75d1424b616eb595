"""MoRIC's decoder in numpy (no torch): `decode.decode` turns a payload and its
streams into pixels; `layers` holds the two arithmetics (exact fixed point,
and float32 for files written before it), `upsampling` and `synthesis` the
networks. This `__init__` imports nothing."""

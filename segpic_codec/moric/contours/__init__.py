"""MoRIC's regions: the automatic partition of an image and the contour stream
that carries it (chains coded as exact cracks or C* polygons, their geometry
and their range coding). Torch-free; this `__init__` imports nothing."""

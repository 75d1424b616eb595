"""Training SegPIC: the photos, their masks and random crops (`data`), the
variable-rate training loop (`train`) and the rate-distortion evaluation with
real .spic files (`evaluation`). Used only to make weights; this `__init__`
imports nothing."""

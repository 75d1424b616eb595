"""MoRIC's error types: every failure attributed to the caller's input (bad
arguments, a corrupt or hostile payload or stream) raises one of these, so the
CLI can print one line and exit. Torch-free."""

from __future__ import annotations

from ..errors import SegpicError


class MoricArgumentError(SegpicError, ValueError):
    """An encode request MoRIC cannot honour (quality out of range, no budget...)."""


class MoricFormatError(SegpicError, ValueError):
    """A payload or stream that is not a valid MoRIC bitstream."""

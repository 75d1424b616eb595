"""The one error type of the codec API.

Every failure segpic attributes to its input (a bad or hostile .spic file, an
unreadable image, a request the codec cannot fulfil) raises a subclass of
`SegpicError`, so callers have one type to catch. The subclasses also derive
from `ValueError`, which they were before this base class existed, so existing
`except ValueError` code keeps working.
"""

from __future__ import annotations


class SegpicError(Exception):
    """Base class of the errors segpic raises for bad input files and requests."""


class CodecError(SegpicError, ValueError):
    """A request a codec cannot fulfil (bad quality, unreachable bpp, foreign file)."""

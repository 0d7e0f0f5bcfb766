"""Exceptions raised by :mod:`shardring`.

Every error derives from :class:`RingError`, itself a :class:`ValueError`, so a caller can
catch the whole family at once. Errors about a missing thing are also :class:`LookupError`
(not :class:`KeyError`: ``str(KeyError(msg))`` wraps the message in quotes).
"""

from __future__ import annotations


class RingError(ValueError):
    """Base class of every error raised by :mod:`shardring`."""


class EmptyRingError(RingError, LookupError):
    """A key was looked up on a ring that has no nodes."""


class UnknownNodeError(RingError, LookupError):
    """A node name was referenced that is not on the ring."""


class DuplicateNodeError(RingError):
    """A node name was added twice."""


class InvalidWeightError(RingError):
    """A weight is not an ``int`` in ``1..MAX_WEIGHT`` (``bool`` and ``float`` are refused)."""


class InvalidNodeNameError(RingError):
    """A node name is not a non-empty, trimmed, UTF-8 encodable ``str``."""


class InvalidKeyError(RingError):
    """A ``str`` key cannot be encoded as UTF-8 (it holds a lone surrogate)."""

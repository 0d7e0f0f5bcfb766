"""shardring: a consistent-hash ring of named, weighted nodes.

>>> ring = HashRing({"shard0": 1, "shard1": 1, "shard2": 2})
>>> ring.get("room:lobby") in ring
True

The algorithm is specified byte for byte in ``docs/shardring.md``.
"""

from shardring.errors import (
    DuplicateNodeError,
    EmptyRingError,
    InvalidKeyError,
    InvalidNodeNameError,
    InvalidWeightError,
    RingError,
    UnknownNodeError,
)
from shardring.ring import (
    DEFAULT_SEED,
    DEFAULT_VNODES,
    MAX_VNODES,
    MAX_WEIGHT,
    HashRing,
    key_point,
    node_point,
)

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_VNODES",
    "MAX_VNODES",
    "MAX_WEIGHT",
    "DuplicateNodeError",
    "EmptyRingError",
    "HashRing",
    "InvalidKeyError",
    "InvalidNodeNameError",
    "InvalidWeightError",
    "RingError",
    "UnknownNodeError",
    "key_point",
    "node_point",
]

"""A consistent-hash ring of named, weighted nodes (see ``docs/shardring.md`` for the spec).

Every node ``name`` of weight ``w`` owns ``vnodes * w`` points on a 32-bit circle. The point
with index ``i`` sits at ``MurmurHash3_x86_32(utf8(f"{name}#{i}"), seed)``; a key sits at
``MurmurHash3_x86_32(utf8(key), seed)`` and belongs to the node of the first point at or
after it, wrapping past the top of the circle to the lowest point.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping

from mmh3 import hash as _murmur3_32

from shardring.errors import (
    DuplicateNodeError,
    EmptyRingError,
    InvalidKeyError,
    InvalidNodeNameError,
    InvalidWeightError,
    UnknownNodeError,
)

DEFAULT_VNODES = 2000
"""Points per unit of weight. See ``docs/shardring.md`` ("Default parameters") for why."""

DEFAULT_SEED = 0x72696E67
"""MurmurHash3 seed: the ASCII bytes ``b"ring"`` read big-endian (1919512167)."""

MAX_WEIGHT = 100
"""Largest accepted weight.

Weights are relative capacities, and 100:1 is beyond any real deployment; the cap keeps a
typo from building millions of points (weight 100 is 200,000 points, ~13 MB, by default).
"""

MAX_VNODES = 10_000
"""Largest accepted ``vnodes``."""

_MAX_SEED = 0xFFFFFFFF


def _key_bytes(key: str | bytes) -> bytes:
    """Return the bytes to hash for a key that is not plain ASCII.

    Hazard: mmh3 5.3.1 crashes the interpreter (SIGSEGV) when handed a ``str`` holding a
    lone surrogate, which ``json.loads('"\\ud800"')`` happily produces from client input.
    So a ``str`` only ever reaches mmh3 when it is ASCII; anything else is encoded here,
    where a lone surrogate raises :class:`InvalidKeyError` instead.
    """
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidKeyError(
                f"key {key!r} cannot be encoded as UTF-8 ({exc.reason} at index {exc.start})"
            ) from None
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


def key_point(key: str | bytes, seed: int = DEFAULT_SEED) -> int:
    """Position of ``key`` on the circle: unsigned MurmurHash3_x86_32 of its UTF-8 bytes."""
    data = key if isinstance(key, str) and key.isascii() else _key_bytes(key)
    return _murmur3_32(data, seed, False)


def node_point(name: str, index: int, seed: int = DEFAULT_SEED) -> int:
    """Position of point ``index`` of node ``name``: the key point of ``f"{name}#{index}"``.

    The label is unambiguous even when ``name`` contains ``#``: the index is plain decimal
    digits, so the text after the *last* ``#`` is always the index.
    """
    return _murmur3_32(f"{name}#{index}".encode(), seed, False)


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidNodeNameError(f"node name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidNodeNameError("node name must not be empty")
    if name != name.strip():
        # "shard0 " read from a config file would silently be a different ring identity.
        raise InvalidNodeNameError(f"node name {name!r} has leading or trailing whitespace")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidNodeNameError(f"node name {name!r} is not encodable as UTF-8") from None
    return name


def _check_weight(name: str, weight: object) -> int:
    # bool is an int subclass: ``add("a", True)`` is almost surely a bug, so refuse it.
    if not isinstance(weight, int) or isinstance(weight, bool):
        raise InvalidWeightError(
            f"weight of node {name!r} must be an int, not {type(weight).__name__} ({weight!r})"
        )
    if not 1 <= weight <= MAX_WEIGHT:
        raise InvalidWeightError(
            f"weight of node {name!r} must be in 1..{MAX_WEIGHT}, got {weight}"
        )
    return weight


def _check_int(what: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in {low}..{high}, got {value}")
    return value


def _as_weights(nodes: Mapping[str, int] | Iterable[str] | None) -> list[tuple[object, object]]:
    """Normalise the constructor's ``nodes`` argument to unchecked (name, weight) pairs."""
    if nodes is None:
        return []
    if isinstance(nodes, str | bytes):
        # Iterating "shard0" would silently make six one-letter nodes.
        raise TypeError("nodes must be a mapping or an iterable of names, not a single str")
    if isinstance(nodes, Mapping):
        return list(nodes.items())
    return [(name, 1) for name in nodes]


class HashRing:
    """Consistent-hash ring mapping keys to named nodes.

    Lookups are safe to run from several threads while one thread mutates the ring: every
    mutation builds new arrays and publishes them with one attribute store. Mutations
    themselves must not run concurrently with each other.
    """

    __slots__ = ("_points", "_seed", "_table", "_vnodes", "_weights")

    def __init__(
        self,
        nodes: Mapping[str, int] | Iterable[str] | None = None,
        *,
        vnodes: int = DEFAULT_VNODES,
        seed: int = DEFAULT_SEED,
    ) -> None:
        self._vnodes = _check_int("vnodes", vnodes, 1, MAX_VNODES)
        self._seed = _check_int("seed", seed, 0, _MAX_SEED)
        self._weights: dict[str, int] = {}
        self._points: dict[str, list[int]] = {}
        # (positions, owners): positions sorted ascending, owners[i] owns positions[i], and
        # owners carries one extra entry, a copy of owners[0], so that a key above the highest
        # point (bisect index == len(positions)) wraps around without a branch.
        # The third item is the node count, so preference() reads one consistent snapshot.
        self._table: tuple[list[int], list[str], int] = ([], [], 0)
        for name, weight in _as_weights(nodes):
            self._insert(name, weight)
        self._publish()

    # -- queries ---------------------------------------------------------------------------

    def get(self, key: str | bytes) -> str:
        """Return the name of the node owning ``key``; :class:`EmptyRingError` if none.

        This is the hot path: one MurmurHash3 call, one C bisect and one list index. The
        ``isascii()`` test keeps non-ASCII ``str`` away from mmh3 (see :func:`_key_bytes`).
        """
        positions, owners, _ = self._table
        try:
            point = _murmur3_32(key if key.isascii() else _key_bytes(key), self._seed, False)
        except AttributeError:
            raise TypeError(f"key must be str or bytes, not {type(key).__name__}") from None
        try:
            return owners[bisect_left(positions, point)]
        except IndexError:
            raise EmptyRingError(f"cannot look up {key!r}: the ring has no nodes") from None

    def preference(self, key: str | bytes, n: int | None = None) -> list[str]:
        """Distinct node names met walking clockwise from ``key``, starting with ``get(key)``.

        At most ``n`` names (all nodes when ``n`` is None). Removing the first name makes the
        second the new owner of ``key``, so this is the natural replica / fallback order.
        """
        positions, owners, limit = self._table
        if n is not None:
            limit = min(limit, _check_int("n", n, 0, 2**63))
        if not positions:
            raise EmptyRingError(f"cannot look up {key!r}: the ring has no nodes")
        start = bisect_left(positions, key_point(key, self._seed))
        total = len(positions)
        found: list[str] = []
        seen: set[str] = set()
        for offset in range(total):
            if len(found) >= limit:
                break
            owner = owners[(start + offset) % total]
            if owner not in seen:
                seen.add(owner)
                found.append(owner)
        return found

    @property
    def nodes(self) -> dict[str, int]:
        """A copy of the ``{name: weight}`` map, sorted by name."""
        return dict(sorted(self._weights.items()))

    @property
    def vnodes(self) -> int:
        """Points per unit of weight."""
        return self._vnodes

    @property
    def seed(self) -> int:
        """MurmurHash3 seed shared by keys and points."""
        return self._seed

    def weight(self, name: str) -> int:
        """Weight of node ``name``; :class:`UnknownNodeError` if it is not on the ring."""
        try:
            return self._weights[name]
        except (KeyError, TypeError):
            raise UnknownNodeError(f"node {name!r} is not on the ring") from None

    def __len__(self) -> int:
        return len(self._weights)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._weights

    def __repr__(self) -> str:
        return f"HashRing(nodes={self.nodes!r}, vnodes={self._vnodes}, seed={self._seed:#x})"

    # -- mutations -------------------------------------------------------------------------

    def add(self, name: str, weight: int = 1) -> None:
        """Add node ``name`` with ``weight``; only keys moving *to* it change owner."""
        self._insert(name, weight)
        self._publish()

    def remove(self, name: str) -> None:
        """Remove node ``name``; only the keys it owned change owner."""
        if name not in self:
            raise UnknownNodeError(f"cannot remove node {name!r}: it is not on the ring")
        del self._weights[name]
        del self._points[name]
        self._publish()

    def _insert(self, name: object, weight: object) -> None:
        checked = _check_name(name)
        if checked in self._weights:
            raise DuplicateNodeError(f"node {checked!r} is already on the ring")
        checked_weight = _check_weight(checked, weight)
        count = self._vnodes * checked_weight
        self._points[checked] = [node_point(checked, i, self._seed) for i in range(count)]
        self._weights[checked] = checked_weight

    def _publish(self) -> None:
        """Rebuild the sorted arrays and swap them in with a single store.

        Ties (two points at one position) are ordered by name, so the result depends only
        on the set of nodes, never on the order in which they were added.
        """
        merged = sorted((point, name) for name, points in self._points.items() for point in points)
        positions = [point for point, _ in merged]
        owners = [name for _, name in merged]
        if owners:
            owners.append(owners[0])
        self._table = (positions, owners, len(self._points))

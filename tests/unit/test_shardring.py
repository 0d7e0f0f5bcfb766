"""Tests for the shardring consistent-hash ring (spec: docs/shardring.md)."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter
from pathlib import Path

import pytest

from shardring import (
    DEFAULT_SEED,
    DEFAULT_VNODES,
    MAX_WEIGHT,
    DuplicateNodeError,
    EmptyRingError,
    HashRing,
    InvalidKeyError,
    InvalidNodeNameError,
    InvalidWeightError,
    RingError,
    UnknownNodeError,
    key_point,
    node_point,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "shardring.md"
SHARDS_A = [f"shard{i}" for i in range(4)]
WEIGHTS_B = {"shard0": 1, "shard1": 1, "shard2": 2}

# (key, key point, owner in ring A, owner in ring B, preference in ring A). Frozen: if these
# change, every deployed cluster would move its rooms. Mirrored in docs/shardring.md.
GOLDEN_KEYS = [
    ("user:alice", 839126172, "shard3", "shard2", "3021"),
    ("user:bob", 565102430, "shard2", "shard2", "2301"),
    ("user:carol", 1615540730, "shard3", "shard1", "3102"),
    ("user:3f2a9c1e-8b7d-4e21-9a55-0c6d2f1b7e44", 3691170011, "shard0", "shard2", "0312"),
    ("room:lobby", 3459299719, "shard3", "shard0", "3012"),
    ("room:general", 1433903425, "shard1", "shard1", "1320"),
    ("room:42", 1775576768, "shard0", "shard0", "0213"),
    ("room:1", 2100866169, "shard0", "shard0", "0312"),
    ("room:2", 1251954055, "shard2", "shard2", "2031"),
    ("room:1000000", 1658500033, "shard1", "shard1", "1203"),
    ("dm:alice:bob", 2101249850, "shard3", "shard1", "3120"),
    ("history:room:lobby", 3625434472, "shard3", "shard2", "3201"),
    ("sid:Xk3J9aQ2", 1410066549, "shard2", "shard2", "2031"),
    ("a", 708810010, "shard1", "shard1", "1320"),
    ("shard0", 3477882198, "shard1", "shard1", "1023"),
    ("shard0#0", 2139350449, "shard0", "shard0", "0312"),
    ("room:café", 2242838351, "shard3", "shard1", "3120"),
    ("user:Zoë", 430305621, "shard3", "shard2", "3120"),
    ("room:日本語", 3562424912, "shard2", "shard2", "2013"),
    ("emoji:🎉", 3873764185, "shard0", "shard0", "0132"),
]
# (node name, point index, position): pins the point derivation itself.
GOLDEN_POINTS = [
    ("shard0", 0, 2139350449),
    ("shard0", 1, 1495403040),
    ("shard0", 1999, 2398849873),
    ("shard2", 3999, 727600396),
    ("shard3", 7, 2097952270),
]


@pytest.fixture(scope="module")
def keys() -> list[str]:
    """10^5 realistic keys: 3/4 user ids (uuid-ish), 1/4 room ids."""
    rng = random.Random(20240611)
    users = [f"user:{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(75_000)]
    rooms = [f"room:{rng.randrange(10**9)}" for _ in range(25_000)]
    return users + rooms


def owners(ring: HashRing, keys: list[str]) -> list[str]:
    get = ring.get
    return [get(k) for k in keys]


def shard_ring(n: int) -> HashRing:
    return HashRing([f"shard{i}" for i in range(n)])


# -- 1. golden values -----------------------------------------------------------------------


def _murmur3_x86_32(data: bytes, seed: int) -> int:
    """Independent pure-Python MurmurHash3_x86_32, straight from the reference C code."""
    mask = 0xFFFFFFFF

    def mix(k: int) -> int:
        k = (k * 0xCC9E2D51) & mask
        k = ((k << 15) | (k >> 17)) & mask
        return (k * 0x1B873593) & mask

    h = seed
    body = len(data) - len(data) % 4
    for i in range(0, body, 4):
        h ^= mix(int.from_bytes(data[i : i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    if body < len(data):
        h ^= mix(int.from_bytes(data[body:], "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def test_defaults_are_pinned() -> None:
    assert DEFAULT_SEED == 0x72696E67 == int.from_bytes(b"ring", "big")
    assert DEFAULT_VNODES == 2000
    assert MAX_WEIGHT == 100


def test_golden_points() -> None:
    for name, index, expected in GOLDEN_POINTS:
        assert node_point(name, index) == expected, (name, index)
        data = f"{name}#{index}".encode()
        assert _murmur3_x86_32(data, DEFAULT_SEED) == expected


def test_murmur_reference_vectors() -> None:
    # Published MurmurHash3_x86_32 vectors, so a port can check its hash before its ring.
    assert key_point("", seed=0) == 0
    assert key_point("hello", seed=0) == 613153351
    assert key_point("The quick brown fox jumps over the lazy dog", seed=0x9747B28C) == 0x2FA826CD
    for length in range(9):  # every tail length, through both implementations
        data = bytes(range(1, length + 1))
        assert key_point(data) == _murmur3_x86_32(data, DEFAULT_SEED)


def test_golden_keys() -> None:
    ring_a = HashRing(SHARDS_A)
    ring_b = HashRing(WEIGHTS_B)
    for key, point, owner_a, owner_b, pref_a in GOLDEN_KEYS:
        assert key_point(key) == point, key
        assert _murmur3_x86_32(key.encode(), DEFAULT_SEED) == point, key
        assert ring_a.get(key) == owner_a, key
        assert ring_b.get(key) == owner_b, key
        assert ring_a.preference(key) == [f"shard{c}" for c in pref_a], key


def test_spec_reference_implementation_agrees() -> None:
    """A naive port of docs/shardring.md (pure-Python hash, linear scan) gives the same owners."""
    weights = {"alpha": 1, "beta": 3, "gamma#1": 2, "δ": 1}
    vnodes = 40
    points = sorted(
        (_murmur3_x86_32(f"{name}#{i}".encode(), DEFAULT_SEED), name.encode())
        for name, weight in weights.items()
        for i in range(vnodes * weight)
    )
    ring = HashRing(weights, vnodes=vnodes)
    for i in range(2000):
        key = f"key:{i}"
        point = _murmur3_x86_32(key.encode(), DEFAULT_SEED)
        expected = next((name for p, name in points if p >= point), points[0][1])
        assert ring.get(key) == expected.decode(), key


def test_golden_vectors_are_in_the_doc() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for key, point, owner_a, owner_b, pref_a in GOLDEN_KEYS:
        pref = ", ".join(f"shard{c}" for c in pref_a)
        row = f"| `{key}` | {point} | {owner_a} | {owner_b} | {pref} |"
        assert row in doc, row
    for name, index, expected in GOLDEN_POINTS:
        row = f"| `{name}#{index}` | {expected} |"
        assert row in doc, row


def test_tie_break_by_name() -> None:
    # t12791#3 and t14486#1 land on the same position; the smaller name must win.
    assert node_point("t12791", 3) == node_point("t14486", 1) == 875385790
    for names in (["t12791", "t14486"], ["t14486", "t12791"]):
        ring = HashRing(names, vnodes=4)
        assert key_point("tie:4") < 875385790  # lands on the tied point
        assert ring.get("tie:4") == "t12791"
        assert ring.preference("tie:4") == ["t12791", "t14486"]
        assert key_point("tie:3") > max(node_point(n, i) for n in names for i in range(4))
        assert ring.get("tie:3") == "t12791"  # wrapped around to the lowest (tied) point


# -- 2, 3. minimal remapping ----------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 10))
def test_adding_a_shard_moves_only_its_fair_share(n: int, keys: list[str]) -> None:
    before = owners(shard_ring(n), keys)
    grown = shard_ring(n)
    grown.add(f"shard{n}")
    after = owners(grown, keys)
    moved = [new for old, new in zip(before, after, strict=True) if old != new]
    assert set(moved) <= {f"shard{n}"}
    fraction = len(moved) / len(keys)
    assert 0.85 / (n + 1) <= fraction <= 1.15 / (n + 1), fraction


@pytest.mark.parametrize("size", [5, 8])
def test_removing_any_shard_moves_only_its_keys(size: int, keys: list[str]) -> None:
    sample = keys[:20_000]
    before = owners(shard_ring(size), sample)
    for gone in range(size):
        ring = shard_ring(size)
        ring.remove(f"shard{gone}")
        after = owners(ring, sample)
        for key, old, new in zip(sample, before, after, strict=True):
            if old == f"shard{gone}":
                assert new != old, key
            else:
                assert new == old, key


def test_raising_a_weight_only_moves_keys_to_that_node(keys: list[str]) -> None:
    sample = keys[:20_000]
    before = owners(HashRing(WEIGHTS_B), sample)
    ring = HashRing(WEIGHTS_B)
    ring.remove("shard0")
    ring.add("shard0", 2)  # keeps points 0..1999, adds 2000..3999
    after = owners(ring, sample)
    moved = {new for old, new in zip(before, after, strict=True) if old != new}
    assert moved == {"shard0"}


# -- 4, 5. balance and weights --------------------------------------------------------------


def test_eight_equal_shards_are_balanced(keys: list[str]) -> None:
    counts = Counter(owners(shard_ring(8), keys))
    average = len(keys) / 8
    assert len(counts) == 8
    assert max(counts.values()) <= 1.10 * average, counts
    assert min(counts.values()) >= 0.90 * average, counts


def test_weights_scale_the_share(keys: list[str]) -> None:
    counts = Counter(owners(HashRing(WEIGHTS_B), keys))
    unit = (counts["shard0"] + counts["shard1"]) / 2
    assert 1.8 <= counts["shard2"] / unit <= 2.2, counts
    ring = HashRing({"w1": 1, "w2": 2, "w3": 3, "w4": 4})
    counts = Counter(owners(ring, keys))
    for name, weight in ring.nodes.items():
        share = counts[name] / len(keys)
        assert abs(share / (weight / 10) - 1) <= 0.10, (name, share)


# -- 6. order independence ------------------------------------------------------------------


def test_node_order_does_not_matter(keys: list[str]) -> None:
    sample = keys[:5_000]
    weights = {"shard0": 1, "shard1": 2, "shard2": 1, "shard3": 1}
    reference = owners(HashRing(weights), sample)
    for order in itertools.permutations(weights):
        assert owners(HashRing({name: weights[name] for name in order}), sample) == reference
    for add_order in (["shard3", "shard0", "shard2", "shard1"], ["shard1", "shard2", "shard0"]):
        ring = HashRing(["shard3"] if "shard3" not in add_order else [])
        for name in add_order:
            ring.add(name, weights[name])
        assert owners(ring, sample) == reference
    plain = owners(HashRing(["shard2", "shard0", "shard1"]), sample)
    assert plain == owners(HashRing({"shard0": 1, "shard1": 1, "shard2": 1}), sample)


# -- 7. preference lists --------------------------------------------------------------------


def test_preference_shape(keys: list[str]) -> None:
    ring = HashRing(WEIGHTS_B)
    for key in keys[:2_000]:
        full = ring.preference(key)
        assert sorted(full) == ["shard0", "shard1", "shard2"]
        assert full[0] == ring.get(key)
        assert ring.preference(key) == full
        for n in range(5):
            assert ring.preference(key, n) == full[: min(n, 3)]


def test_preference_is_the_failover_order(keys: list[str]) -> None:
    """Dropping the first k names of preference(key) makes preference[k] the owner."""
    names = [f"shard{i}" for i in range(5)]
    rings: dict[frozenset[str], HashRing] = {}  # one ring per surviving subset, built lazily
    full = HashRing(names)
    for key in keys[:2_000]:
        preference = full.preference(key)
        for depth in range(1, len(names)):
            survivors = frozenset(preference[depth:])
            if survivors not in rings:
                rings[survivors] = HashRing(survivors)
            assert rings[survivors].get(key) == preference[depth], (key, depth)


def test_preference_on_a_single_node_ring() -> None:
    assert HashRing(["only"]).preference("room:lobby") == ["only"]
    assert HashRing(["only"]).preference("room:lobby", 0) == []


# -- 8. errors ------------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    for error in (EmptyRingError, UnknownNodeError, DuplicateNodeError, InvalidWeightError):
        assert issubclass(error, RingError)
    assert issubclass(RingError, ValueError)
    assert issubclass(EmptyRingError, LookupError)
    assert issubclass(UnknownNodeError, LookupError)


def test_empty_ring() -> None:
    with pytest.raises(EmptyRingError, match="no nodes"):
        HashRing().get("room:lobby")
    with pytest.raises(EmptyRingError):
        HashRing().preference("room:lobby")
    ring = HashRing(["shard0"])
    ring.remove("shard0")
    with pytest.raises(EmptyRingError, match="room:lobby"):
        ring.get("room:lobby")
    assert len(ring) == 0


def test_unknown_and_duplicate_nodes() -> None:
    ring = HashRing(["shard0"])
    with pytest.raises(UnknownNodeError, match="'shard9'"):
        ring.remove("shard9")
    with pytest.raises(UnknownNodeError, match="'shard9'"):
        ring.weight("shard9")
    with pytest.raises(DuplicateNodeError, match="'shard0'"):
        ring.add("shard0")
    with pytest.raises(DuplicateNodeError, match="'shard0'"):
        HashRing(["shard0", "shard1", "shard0"])
    assert ring.nodes == {"shard0": 1}


@pytest.mark.parametrize("weight", [0, -1, MAX_WEIGHT + 1, 1.5, 2.0, True, False, "2", None])
def test_bad_weights(weight: object) -> None:
    ring = HashRing(["shard0"])
    with pytest.raises(InvalidWeightError, match="'shard1'") as info:
        ring.add("shard1", weight)  # type: ignore[arg-type]
    assert "weight" in str(info.value)
    with pytest.raises(InvalidWeightError):
        HashRing({"shard1": weight})
    assert ring.nodes == {"shard0": 1}


@pytest.mark.parametrize("name", ["", " shard0", "shard0\n", "  ", "bad\ud800", 7, None, b"shard0"])
def test_bad_names(name: object) -> None:
    ring = HashRing()
    with pytest.raises(InvalidNodeNameError, match="node name"):
        ring.add(name)  # type: ignore[arg-type]
    assert len(ring) == 0


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="single str"):
        HashRing("shard0")
    for vnodes in (0, -5, 10_001):
        with pytest.raises(ValueError, match="vnodes"):
            HashRing(["a"], vnodes=vnodes)
    with pytest.raises(ValueError, match="seed"):
        HashRing(["a"], seed=2**32)
    with pytest.raises(TypeError, match="n must be an int"):
        HashRing(["a"]).preference("k", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        HashRing(["a"]).preference("k", -1)
    with pytest.raises(TypeError, match="str or bytes"):
        HashRing(["a"]).get(42)  # type: ignore[arg-type]


# -- 9. keys --------------------------------------------------------------------------------


def test_str_and_bytes_keys_are_equivalent() -> None:
    ring = HashRing(WEIGHTS_B)
    for key in ["", "room:lobby", "room:café", "user:Zoë", "room:日本語", "emoji:🎉", "a\x00b"]:
        assert ring.get(key) == ring.get(key.encode()), key
        assert ring.preference(key) == ring.preference(key.encode()), key
        assert key_point(key) == key_point(key.encode()), key
    assert ring.get(b"\xff\xfe not utf-8") in ring


def test_lone_surrogate_key_is_rejected_not_crashing() -> None:
    # mmh3 5.3.1 segfaults on such a str; JSON from a client can carry one.
    key = json.loads('"room:\\ud800"')
    ring = HashRing(["shard0"])
    with pytest.raises(InvalidKeyError, match="UTF-8"):
        ring.get(key)
    with pytest.raises(InvalidKeyError):
        ring.preference(key)
    with pytest.raises(InvalidKeyError):
        key_point(key)


# -- misc API -------------------------------------------------------------------------------


def test_introspection() -> None:
    ring = HashRing({"shard1": 2, "shard0": 1}, vnodes=10, seed=7)
    assert ring.nodes == {"shard0": 1, "shard1": 2}
    assert list(ring.nodes) == ["shard0", "shard1"]
    ring.nodes["shard9"] = 1  # a copy: does not touch the ring
    assert "shard9" not in ring
    assert "shard1" in ring
    assert 3 not in ring
    assert len(ring) == 2
    assert ring.weight("shard1") == 2
    assert (ring.vnodes, ring.seed) == (10, 7)
    assert repr(ring) == "HashRing(nodes={'shard0': 1, 'shard1': 2}, vnodes=10, seed=0x7)"


def test_seed_changes_the_ring(keys: list[str]) -> None:
    sample = keys[:1_000]
    default = owners(HashRing(SHARDS_A), sample)
    assert owners(HashRing(SHARDS_A, seed=DEFAULT_SEED), sample) == default
    assert owners(HashRing(SHARDS_A, seed=1), sample) != default

"""Single-thread lookup throughput of shardring.HashRing.

Usage: .venv/bin/python bench/ring_bench.py [--shards 3] [--keys 100000] [--seconds 2] [--json]

Each scenario loops ``ring.get(key)`` over the whole key list, repeating passes for at least
``--seconds`` (and at least 3 passes); the best pass is reported, since slower passes
measure interference from the machine, not the code. Loop overhead is included on purpose:
callers pay it too.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shardring import DEFAULT_VNODES, HashRing

_MIN_PASSES = 3


def make_keys(count: int, seed: int = 1) -> list[str]:
    """Half "user:<uuid>", half "room:<id>", shuffled, like the chat server's keys."""
    rng = random.Random(seed)
    users = [f"user:{uuid.UUID(int=rng.getrandbits(128), version=4)}" for _ in range(count // 2)]
    rooms = [f"room:{rng.randrange(10**7)}" for _ in range(count - count // 2)]
    keys = users + rooms
    rng.shuffle(keys)
    return keys


def time_passes(run: Callable[[], None], seconds: float) -> list[float]:
    """Durations (s) of repeated calls of ``run`` until ``seconds`` have been spent."""
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(durations) < _MIN_PASSES or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        durations.append(time.perf_counter() - start)
    return durations


def lookup_pass(ring: HashRing, keys: Sequence[str | bytes]) -> Callable[[], None]:
    get = ring.get

    def run() -> None:
        for key in keys:
            get(key)

    return run


def preference_pass(ring: HashRing, keys: Sequence[str]) -> Callable[[], None]:
    preference = ring.preference

    def run() -> None:
        for key in keys:
            preference(key, 2)

    return run


def measure(ring: HashRing, keys: list[str], seconds: float) -> dict[str, dict[str, float]]:
    scenarios: dict[str, tuple[Callable[[], None], int]] = {
        "get_str": (lookup_pass(ring, keys), len(keys)),
        "get_bytes": (lookup_pass(ring, [k.encode() for k in keys]), len(keys)),
        "get_str_non_ascii": (lookup_pass(ring, [k + "é" for k in keys]), len(keys)),
        "preference_n2": (preference_pass(ring, keys[: len(keys) // 4]), len(keys) // 4),
    }
    results: dict[str, dict[str, float]] = {}
    for name, (run, count) in scenarios.items():
        run()  # warm-up pass
        durations = time_passes(run, seconds)
        results[name] = {
            "best_per_s": count / min(durations),
            "median_per_s": count / statistics.median(durations),
            "passes": len(durations),
        }
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3, help="equal-weight nodes (default 3)")
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys (default 1e5)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per scenario (2)")
    parser.add_argument("--vnodes", type=int, default=DEFAULT_VNODES, help="points per weight")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.shards < 1 or args.keys < 4 or args.seconds <= 0:
        parser.error("need --shards >= 1, --keys >= 4 and --seconds > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    keys = make_keys(args.keys)
    start = time.perf_counter()
    ring = HashRing([f"shard{i}" for i in range(args.shards)], vnodes=args.vnodes)
    build_ms = (time.perf_counter() - start) * 1000
    results = measure(ring, keys, args.seconds)
    if args.json:
        report = {
            "shards": args.shards,
            "keys": args.keys,
            "vnodes": args.vnodes,
            "build_ms": round(build_ms, 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": {
                name: {k: round(v, 1) for k, v in r.items()} for name, r in results.items()
            },
        }
        print(json.dumps(report, indent=2))
        return 0
    headline = results["get_str"]["best_per_s"]
    print(
        f"HashRing.get: {headline:,.0f} lookups/s (best pass, 1 thread, str keys; "
        f"{args.shards} shards x {args.vnodes} vnodes, {args.keys:,} keys, build {build_ms:.1f} ms)"
    )
    for name, r in results.items():
        best, median = r["best_per_s"], r["median_per_s"]
        print(f"  {name:<18} best {best:>12,.0f}/s   median {median:>12,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

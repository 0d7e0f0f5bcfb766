#!/usr/bin/env python3
"""Where a node's CPU goes under the dm load: one harness run, observed (bench/observe.py).

    .venv/bin/python bench/profile.py --rate 1000 [--nodes 2] [--seconds 10] [--target project]

Prints the Redis commands per delivered message and the first node's profile (py-spy over the
measured window: by function's own time, inclusive, by library, by call site in chat/).  The
collapsed stacks stay in ``bench/results/profiles/`` (feed them to any flame graph tool).
"""

from __future__ import annotations

import argparse
import dataclasses

from run import FULL, harness, run_harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--target", default="project")
    args = parser.parse_args()
    plan = dataclasses.replace(FULL, duration=args.seconds, runs=[])
    # run_harness prints the run's summary (top Redis commands, top 6 functions); the rest:
    run = run_harness(harness(), args.target, "dm", args.nodes, args.rate, plan)
    for name, c in (run.get("redis_commands") or {}).items():
        print(f"  {name:<24} {c['calls_per_msg']:7.3f} calls/msg {c['usec_per_msg']:8.2f} µs/msg")
    profile = run.get("profile_top") or {}
    for part in ("self", "inclusive", "libraries", "chat"):
        print(f"{part} (% of {profile.get('samples', 0)} samples of pid {profile.get('pid')}):")
        for name, share in profile.get(part, []):
            print(f"  {share:5.1f}%  {name}")


if __name__ == "__main__":
    main()

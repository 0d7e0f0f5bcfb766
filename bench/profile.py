#!/usr/bin/env python3
"""Where a node's CPU goes under the dm load: one harness run, observed (bench/observe.py).

    .venv/bin/python bench/profile.py --rate 1000 [--nodes 2] [--seconds 10] [--target project]

Prints the Redis commands per message and the first node's profile (py-spy over the measured
window: by library, by function, by call site in chat/).  The collapsed stacks stay in
``bench/results/profiles/`` (feed them to any flame graph tool).
"""

from __future__ import annotations

import argparse

from observe import per_message
from run import FULL, harness, run_harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--target", default="project")
    args = parser.parse_args()
    plan = FULL.__class__(**{**vars(FULL), "duration": args.seconds, "runs": []})
    run = run_harness(harness(), args.target, "dm", args.nodes, args.rate, plan)
    if run.get("redis") and run.get("sent"):
        print("\n".join(per_message(run["redis"], run["sent"])))
    for part, shares in (run.get("profile") or {}).items():
        print(f"{part}:")
        for name, share in shares:
            print(f"  {share:5.1f}%  {name}")


if __name__ == "__main__":
    main()

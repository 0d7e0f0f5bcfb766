#!/usr/bin/env python3
"""Before/after: the dm (or room) scenario against several git revisions of this server, in alternation.

    .venv/bin/python bench/commits.py c194fff fa378bd HEAD --rates 500,1000

Each revision is checked out into a temporary git worktree and run by the shared harness with
this checkout's virtualenv (so the installed dependencies are today's: a revision that predates
a dependency simply does not import it).  Prints one Markdown row per (revision, rate): node CPU
seconds per 1,000 delivered messages (nodes, then nodes and every Redis process), Redis µs per
delivered message (INFO commandstats over the
window), p50/p99 latency and whether the rate was sustained, each after the run's summary (top
Redis commands, the first node's top functions), and writes the raw harness lines to ``--out``
(default ``bench/results/commits.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from report import good, node_cpu_per_1000, total_cpu_per_1000
from run import FULL, ROOT, harness, run_harness


def worktree(rev: str, parent: Path) -> Path:
    path = parent / rev
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), rev],
                   check=True, capture_output=True)  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="+")
    parser.add_argument("--rates", default="500,1000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scenario", choices=("dm", "room"), default="dm")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "commits.json")
    args = parser.parse_args()
    os.environ.setdefault("PROJECT_PYTHON", sys.executable)  # today's virtualenv
    tool, runs = harness(), []
    print(
        "| rev | rate | delivered/s | node CPU s / 1,000 | nodes + Redis CPU s / 1,000 "
        "| Redis µs/msg | p50 ms | p99 ms | sustained |"
    )
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="chat-commits-") as tmp:
        trees = {rev: worktree(rev, Path(tmp)) for rev in args.revs}
        try:
            for _ in range(args.repeat):
                for rate in map(int, args.rates.split(",")):
                    for rev, tree in trees.items():
                        run = run_harness(
                            tool, "project", args.scenario, 2, rate, FULL, project=tree
                        )
                        runs.append({**run, "rev": rev})
                        print(row(rev, rate, run), flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "-f", str(tree)],
                               check=False, capture_output=True)  # fmt: skip
    args.out.write_text(json.dumps(runs, indent=1) + "\n")


def row(rev: str, rate: int, run: dict[str, Any]) -> str:
    if not run.get("ok"):
        return f"| {rev} | {rate} | failed: {str(run.get('error'))[-200:]} |"
    lat = run["latency_ms"]
    redis = sum(c["usec_per_msg"] for c in (run.get("redis_commands") or {}).values())
    return (f"| {rev} | {rate} | {run['delivered_per_s']:.0f} | {node_cpu_per_1000(run) or 0:.2f} | "
            f"{total_cpu_per_1000(run) or 0:.2f} | {redis:.1f} | {lat['p50']:.1f} | {lat['p99']:.1f} | {'yes' if good(run) else 'no'} |")  # fmt: skip


if __name__ == "__main__":
    main()

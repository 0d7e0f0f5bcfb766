#!/usr/bin/env python3
"""Where a node's CPU goes under the dm load: py-spy samples one chat node during a harness run.

    .venv/bin/python bench/profile.py --rate 1000 [--nodes 2] [--seconds 8]

Writes the collapsed stacks to ``bench/results/profile-<rate>.txt`` (feed them to any flame
graph tool) and prints the share of samples by library (the innermost frame of each sample that
belongs to a known library) and the heaviest call sites of this package, inclusive.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from run import FULL, RESULTS, harness, run_harness

LIBRARIES = ("chat", "socketio", "engineio", "aiohttp", "redis", "msgspec", "asyncio", "jwt")


def node_pid(timeout: float = 120) -> int:
    """The first chat node of the run, once the load generator is up (so we sample load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gen, nodes = pgrep("loadgen.js"), pgrep("-m chat serve")
        if gen and nodes:
            return int(nodes.split()[0])
        time.sleep(0.2)
    sys.exit("profile: no chat node under load appeared")


def pgrep(pattern: str) -> str:
    found = subprocess.run(["pgrep", "-o", "-f", "--", pattern], check=False, capture_output=True)
    return found.stdout.decode().strip()


def library(frame: str) -> str | None:
    match = re.search(r"\(([a-z_]+)/", frame)
    name = match.group(1) if match else None
    return name if name in LIBRARIES else None


def summarise(stacks: Path) -> None:
    total, by_lib = 0, collections.Counter[str]()
    inclusive, innermost = collections.Counter[str](), collections.Counter[str]()
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        libs = [lib for f in frames if (lib := library(f))]
        by_lib[libs[-1] if libs else "other (threads, interpreter)"] += n
        innermost[re.sub(r":\d+\)$", ")", frames[-1])] += n
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames if "chat/" in f}:
            inclusive[name] += n
    print(f"{total} samples; innermost library:")
    for name, n in by_lib.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("heaviest functions (self time):")
    for name, n in innermost.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("heaviest call sites in chat/ (inclusive):")
    for name, n in inclusive.most_common(25):
        print(f"  {100 * n / total:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    tool, out = harness(), RESULTS / f"profile-{args.rate}.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plan = FULL.__class__(**{**vars(FULL), "duration": args.seconds + 12, "runs": []})
    load = threading.Thread(
        target=lambda: plan.runs.append(
            run_harness(tool, "project", "dm", args.nodes, args.rate, plan)
        )
    )
    load.start()
    pid = node_pid()
    time.sleep(8)  # past sign-up (argon2 in threads) and the warm-up
    spy = Path(sys.executable).with_name("py-spy")
    subprocess.run([str(spy), "record", "--pid", str(pid), "--duration", str(int(args.seconds)),
                    "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                   check=True, capture_output=True)  # fmt: skip
    load.join()
    summarise(out)
    print(f"profile: stacks in {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""One command for the published benchmark: this server against python-socketio with
AsyncRedisManager ("peer-python") and Node socket.io with @socket.io/redis-adapter
("peer-node"), in the same run on the same machine, targets in alternation.

    .venv/bin/python bench/run.py                 # the full set (takes a while)
    .venv/bin/python bench/run.py --smoke         # seconds-long runs, this server only

Scenarios: dm (rate ramp, 2 nodes), room (200 members, 10 senders), nodes (dm at a fixed rate
with 1, 2, 4 nodes: CPU per 1,000 delivered messages), idle (5,000 idle websocket connections:
RSS per connection), ring (shardring lookups per second).

The dm/room/nodes runs use the shared harness (``CHAT_BENCH_HARNESS``, default
``../shared/bench``) as a tool: its driver starts Redis, the nodes of a target and its Node
load generator, and prints one JSON line per run.  Results go to ``bench/results/``:
``latest.json`` (every run), ``latest.md`` (the tables) and PNG plots (``bench/plots.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from observe import observing, per_message
from report import good, write_report
from tqdm import tqdm

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
TARGETS = ("project", "peer-python", "peer-node")
#: The project runs its full path, so per-user limits are raised for 200 users at high rates.
PROJECT_ENV = {
    "CHAT_SEND_RATE": "100",
    "CHAT_SEND_BURST": "200",
    "CHAT_LOGIN_IP_RATE": "100000",
    "CHAT_REGISTER_IP_RATE": "100000",
    "CHAT_REGISTER_IP_BURST": "100000",
    # Nodes share one host, so they cannot all listen on the default metrics port; the bench
    # reads no metrics.
    "CHAT_METRICS_PORT": "0",
}


@dataclass
class Plan:
    dm_rates: list[int]
    room_rates: list[int]
    nodes_rate: int
    node_counts: list[int]
    idle_connections: int
    duration: float
    targets: tuple[str, ...]
    repeat: int = 1
    runs: list[dict[str, Any]] = field(default_factory=list)


FULL = Plan(
    dm_rates=[500, 750, 1000, 1250, 1500, 2000, 3000, 4000, 6000, 8000],
    room_rates=[10, 20, 40, 80, 120, 160, 240, 320, 640],
    nodes_rate=800,
    node_counts=[1, 2, 4, 8],
    idle_connections=5000,
    duration=10,
    targets=TARGETS,
)
SMOKE = Plan(
    dm_rates=[50],
    room_rates=[5],
    nodes_rate=50,
    node_counts=[1],
    idle_connections=200,
    duration=2,
    targets=("project",),
)


def harness() -> Path:
    path = Path(os.environ.get("CHAT_BENCH_HARNESS", ROOT.parent / "shared" / "bench"))
    if not (path / "run.py").exists():
        sys.exit(f"bench: no harness at {path}; set CHAT_BENCH_HARNESS to its directory")
    if not (path / "node" / "node_modules").exists():
        subprocess.run([str(path / "setup.sh")], check=True)
    return path


def run_harness(
    tool: Path, target: str, scenario: str, nodes: int, rate: int, plan: Plan, project: Path = ROOT
) -> dict:
    args = [
        sys.executable, str(tool / "run.py"), "--target", target, "--nodes", str(nodes),
        "--scenario", scenario, "--users", "200", "--rates", str(rate),
        "--duration", str(plan.duration), "--warmup", "2", "--grace", "3", "--out", "",
        "--tag", "bench",
    ]  # fmt: skip
    if scenario == "room":
        args += ["--senders", "10"]
    env = {**os.environ, "PROJECT_DIR": str(project), **PROJECT_ENV}
    stacks = RESULTS / "profiles" / f"{target}-{scenario}-n{nodes}-r{rate}.txt"
    with observing(env, plan.duration, stacks) as seen:
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, check=False, timeout=900
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"target": target, "scenario": scenario, "nodes": nodes, "target_rate": rate,
                "ok": False, "error": done.stderr[-2000:]}  # fmt: skip
    result = {**json.loads(lines[-1]), **seen}
    tqdm.write("\n".join(describe(result)))
    return result


def describe(run: dict[str, Any]) -> list[str]:
    """A run in a few lines: rates, CPU per message, Redis commands, the node's top functions."""
    sent, delivered = run.get("sent") or 0, run.get("delivered_per_s") or 0
    cpu = run.get("cpu_frac") or {}
    nodes_cpu = sum(v for k, v in cpu.items() if k.startswith("node"))
    lines = [f"{run.get('target')} {run.get('scenario')} N={run.get('nodes')} "
             f"{run.get('target_rate')}/s: delivered {delivered:.0f}/s"]  # fmt: skip
    if delivered:
        lines[0] += (
            f", µs CPU per delivery: nodes {1e6 * nodes_cpu / delivered:.0f}, "
            f"Redis {1e6 * cpu.get('redis', 0) / delivered:.0f}"
        )
    if run.get("redis") and sent:
        lines += per_message(run["redis"], sent)
    for name, share in (run.get("profile") or {}).get("self", [])[:8]:
        lines.append(f"  node0 {share:5.1f}%  {name}")
    return lines


def ramp(tool: Path, scenario: str, rates: list[int], plan: Plan, bar: tqdm) -> None:
    """Each rate for every target in turn (alternation: the machine's speed drifts); a target
    drops out after two rates that were not sustained."""
    misses = dict.fromkeys(plan.targets, 0)
    for rate in rates:
        for target in [t for t in plan.targets if misses[t] < 2]:
            bar.set_postfix_str(f"{scenario} {target} {rate}/s")
            run = run_harness(tool, target, scenario, 2, rate, plan)
            plan.runs.append({**run, "bench": scenario})
            misses[target] = 0 if good(run) else misses[target] + 1
            bar.update()


def nodes(tool: Path, plan: Plan, bar: tqdm) -> None:
    for count in plan.node_counts:
        for target in plan.targets:
            bar.set_postfix_str(f"nodes {target} N={count}")
            run = run_harness(tool, target, "dm", count, plan.nodes_rate, plan)
            plan.runs.append({**run, "bench": "nodes"})
            bar.update()


def idle(plan: Plan, bar: tqdm) -> None:
    bar.set_postfix_str(f"idle {plan.idle_connections} connections")
    out = subprocess.run(
        [sys.executable, str(BENCH / "idle.py"), "--connections", str(plan.idle_connections)],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"ok": False, "error": out.stderr[-2000:]}
    plan.runs.append({**result, "bench": "idle", "target": "project"})
    bar.update()


def ring(plan: Plan, bar: tqdm) -> None:
    bar.set_postfix_str("ring")
    seconds = "0.3" if plan is SMOKE else "2"
    out = subprocess.run(
        [sys.executable, str(BENCH / "ring_bench.py"), "--json", "--seconds", seconds],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    plan.runs.append({**json.loads(out.stdout), "bench": "ring"})
    bar.update()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny loads, this server only")
    parser.add_argument("--only", default="dm,room,nodes,idle,ring", help="scenarios to run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    only = set(args.only.split(","))
    tool = harness() if only & {"dm", "room", "nodes"} else Path()
    total = (
        ("dm" in only) * len(plan.dm_rates) * len(plan.targets)
        + ("room" in only) * len(plan.room_rates) * len(plan.targets)
        + ("nodes" in only) * len(plan.node_counts) * len(plan.targets)
        + ("idle" in only) + ("ring" in only)
    )  # fmt: skip
    with tqdm(total=total, unit="run", desc="bench") as bar:
        if "ring" in only:
            ring(plan, bar)
        if "dm" in only:
            ramp(tool, "dm", plan.dm_rates, plan, bar)
        if "room" in only:
            ramp(tool, "room", plan.room_rates, plan, bar)
        if "nodes" in only:
            nodes(tool, plan, bar)
        if "idle" in only:
            idle(plan, bar)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(plan.runs, indent=1) + "\n")
    write_report(plan.runs, args.out)
    print(f"bench: results in {args.out}")


if __name__ == "__main__":
    main()

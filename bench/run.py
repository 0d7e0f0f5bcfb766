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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from observe import Observation, observing
from report import good, write_report
from tqdm import tqdm  # type: ignore[import-untyped]

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
) -> dict[str, Any]:
    """One harness run, observed (bench/observe.py): its JSON line plus the Redis commands per
    message and node0's top functions over the measured window, printed as it ends."""
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
    with observing(env, tool, stacks) as seen:
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, check=False, timeout=900
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = (
        json.loads(lines[-1])
        if lines
        else {"target": target, "scenario": scenario, "nodes": nodes, "target_rate": rate,
              "ok": False, "error": done.stderr[-2000:]}
    )  # fmt: skip
    result |= per_message(result, seen)
    tqdm.write("\n".join(describe(result)))
    return result


def per_message(run: dict[str, Any], seen: Observation) -> dict[str, Any]:
    """The observation as fields of the run's result.  Redis per delivered message for dm
    (delivered_per_s × duration_s: the window's deliveries, one per message), per message sent
    for room (``sent``: each fans out to every member, so per delivery would hide the cost)."""
    room = run.get("scenario") == "room"
    count = (
        run.get("sent")
        if room
        else (run.get("delivered_per_s") or 0) * (run.get("duration_s") or 0)
    )
    out: dict[str, Any] = {"observe_problems": seen.problems} if seen.problems else {}
    if seen.profile:
        out["profile_top"] = seen.profile
    if not seen.redis or not count:
        return out

    def per(calls: int, usec: int) -> dict[str, float]:
        return {"calls_per_msg": round(calls / count, 3), "usec_per_msg": round(usec / count, 2)}

    calls, usec, roles = Counter[str](), Counter[str](), {}
    for role, rows in seen.redis.items():
        calls.update({name: row["calls"] for name, row in rows.items()})
        usec.update({name: row["usec"] for name, row in rows.items()})
        roles[role] = per(*(sum(row[k] for row in rows.values()) for k in ("calls", "usec")))
    return out | {
        "redis_per": {
            "unit": "message sent" if room else "delivered message",
            "messages": round(count),
        },
        "redis_commands": {name: per(calls[name], n) for name, n in usec.most_common()},
        "redis_roles": roles,  # shards / cluster (masters) / replicas, or a peer's one "redis"
        "redis_commandstats": seen.redis,  # the raw counts of the window, by role
    }


def describe(run: dict[str, Any]) -> list[str]:
    """A run in a few lines: rates, CPU per delivery, Redis per message, node0's profile."""
    head = (
        f"{run.get('target')} {run.get('scenario')} N={run.get('nodes')} {run.get('target_rate')}/s"
    )
    if not run.get("ok"):
        return [f"{head}: failed: {(str(run.get('error')).strip().splitlines() or [''])[-1]}"]
    delivered, cpu = run.get("delivered_per_s") or 0, run.get("cpu_frac") or {}
    nodes_cpu = sum(v for k, v in cpu.items() if k.startswith("node"))
    lines = [f"{head}: delivered {delivered:.0f}/s"]
    if delivered:
        lines[0] += (f", µs CPU per delivery: nodes {1e6 * nodes_cpu / delivered:.0f}, "
                     f"Redis {1e6 * cpu.get('redis', 0) / delivered:.0f}")  # fmt: skip
    lines += redis_lines(run) + profile_lines(run.get("profile_top") or {})
    return lines + [f"  observe: {problem}" for problem in run.get("observe_problems", [])]


def redis_lines(run: dict[str, Any], top: int = 6) -> list[str]:
    commands, roles = run.get("redis_commands") or {}, run.get("redis_roles") or {}
    if not commands:
        return []
    usec = sum(c["usec_per_msg"] for c in commands.values())
    calls = sum(c["calls_per_msg"] for c in commands.values())
    split = ", ".join(f"{role} {r['usec_per_msg']:.1f}" for role, r in sorted(roles.items()))
    ranked = list(commands.items())[:top]
    return [
        f"  Redis per {run['redis_per']['unit']}: {usec:.1f} µs, {calls:.2f} calls ({split} µs)",
        "    " + " · ".join(f"{n} {c['calls_per_msg']:.2f}× {c['usec_per_msg']:.1f} µs"
                           for n, c in ranked),
    ]  # fmt: skip


def profile_lines(profile: dict[str, Any], top: int = 6) -> list[str]:
    """node0's top functions, own time beside inclusive time (% of py-spy's samples)."""
    own, inclusive = profile.get("self", [])[:top], profile.get("inclusive", [])[:top]
    if not own:
        return []
    lines = [
        f"  node0 py-spy, {profile.get('samples')} samples: self | inclusive (below the event loop)"
    ]
    for i in range(max(len(own), len(inclusive))):
        left = f"{own[i][1]:5.1f}% {own[i][0][:60]}" if i < len(own) else ""
        right = f"{inclusive[i][1]:5.1f}% {inclusive[i][0][:60]}" if i < len(inclusive) else ""
        lines.append(f"    {left:<68} | {right}")
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

"""Memory of idle connections: one node, N idle websocket connections, RSS per connection.

    .venv/bin/python bench/idle.py --connections 5000

It also times how they were opened (100 handshakes at a time, as a fleet of clients
reconnects after a node restart): handshakes per second, and CPU milliseconds per handshake
of the node and of every Redis process.  ``--tree DIR`` starts the node from another
checkout (a git worktree of an older revision) to compare handshakes across revisions.

Starts its own Redis fleet and one chat node (devstack, the same code as ``make run``),
registers a few users, measures the node's RSS, opens the connections with the official socket.io-client
(from the benchmark harness's node_modules), waits for every ``session``, measures again, and
prints one JSON line; then the same against ``idle_floor.py`` (python-socketio and aiohttp
with no application code), the floor those libraries set.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script: devstack runs from the checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.cluster import RedisFleet
from devstack.net import pick_free_ports
from devstack.nodes import ChatNodeProcess, node_env

HARNESS = Path(
    os.environ.get("CHAT_BENCH_HARNESS", Path(__file__).resolve().parents[2] / "shared" / "bench")
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (``/proc/<pid>/stat``, in clock ticks)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def register(url: str, n: int) -> list[str]:
    tokens = []
    for i in range(n):
        body = {
            "email": f"idle-{secrets.token_hex(4)}-{i}@example.com",
            "password": "idle bench pw",
        }
        request = urllib.request.Request(
            url + "/api/register", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as resp:
            tokens.append(json.load(resp)["token"])
    return tokens


def hold(
    url: str, tokens_file: Path, connections: int, pid: int, redis: tuple[int, ...] = ()
) -> dict:
    """Open ``connections`` idle sockets to ``url`` and read the server's RSS growth, and what
    the handshakes cost (``redis``: the pids of the Redis processes behind it)."""
    time.sleep(1)  # let start-up garbage settle before the baseline reading
    before = rss_kib(pid)
    cpu_before = (cpu_seconds([pid]), cpu_seconds(list(redis)))
    started = time.monotonic()
    client = subprocess.Popen(
        ["node", str(Path(__file__).with_name("idle.cjs")), url, str(tokens_file),
         str(connections)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "NODE_PATH": str(HARNESS / "node" / "node_modules")},
    )  # fmt: skip
    assert client.stdout is not None
    status = client.stdout.readline().split()
    took = time.monotonic() - started
    node_cpu, redis_cpu = (
        cpu_seconds([pid]) - cpu_before[0],
        cpu_seconds(list(redis)) - cpu_before[1],
    )
    time.sleep(2)  # connections settle (handshake buffers released)
    after = rss_kib(pid)
    client.communicate("", timeout=60)
    opened = int(status[1]) if len(status) >= 2 else 0
    return {
        "ok": opened == connections,
        "connections": opened,
        "failed": int(status[3]) if len(status) >= 4 else connections,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_per_connection_kib": round((after - before) / max(1, opened), 2),
        "handshakes_per_s": round(opened / took),
        "node_cpu_ms_per_handshake": round(1000 * node_cpu / max(1, opened), 3),
        "redis_cpu_ms_per_handshake": round(1000 * redis_cpu / max(1, opened), 3),
    }


def measure(connections: int, users: int, tree: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp, RedisFleet() as fleet:
        # Every user registers from this one address: raise its limits.
        env = node_env(
            fleet.shards_env, fleet.cluster_env, secrets.token_urlsafe(32),
            register_ip_rate="100000", register_ip_burst="100000", login_ip_rate="100000",
        )  # fmt: skip
        if tree is not None:  # ``python -m chat`` imports from the working directory first
            os.chdir(tree)
        node = ChatNodeProcess("idle0", pick_free_ports(1)[0], env, Path(tmp) / "node.log").start()
        try:
            tokens_file = Path(tmp) / "tokens.json"
            tokens_file.write_text(json.dumps(register(node.url, users)))
            assert node.pid is not None
            redis = tuple(p.pid for p in fleet.processes() if p.pid is not None)
            result = hold(node.url, tokens_file, connections, node.pid, redis)
        finally:
            node.stop()
        result["floor"] = floor(connections, tokens_file)
    return result


def floor(connections: int, tokens_file: Path) -> dict:
    """The same measurement against bench/idle_floor.py: the libraries alone."""
    port = pick_free_ports(1)[0]
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("idle_floor.py")), str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "listening"
        return hold(f"http://127.0.0.1:{port}", tokens_file, connections, server.pid)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--users", type=int, help="default: 10 sockets per user")
    parser.add_argument("--tree", type=Path, help="run the node from this checkout")
    args = parser.parse_args()
    # A user may hold 20 sockets (CHAT_CONNECTIONS_PER_USER): ten each stays well inside.
    users = args.users or max(50, -(-args.connections // 10))
    print(json.dumps(measure(args.connections, users, args.tree)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

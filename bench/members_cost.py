"""What one ``members`` call costs as its room grows: 10 members against 5,000 (and the lobby,
which holds everyone), through a real node on a real Redis Cluster.

    .venv/bin/python bench/members_cost.py [--sizes 10,5000] [--calls 200]

Starts its own Redis fleet and one chat node, fills rooms through the storage adapters (no
password hashing: users are written directly, rosters as the node keeps them), puts a tenth
of the members online, and then, per room, makes ``--calls`` ``members`` calls (pages of 100
at random offsets) over one socket.  Reported per call: the client's median latency, and the
Redis commands and Redis CPU time the cluster's masters spent (``INFO commandstats`` deltas,
which include the node's background rounds: a handful of commands a second).  For contrast,
``old ms`` is the algorithm the roster replaced (every member id, record and presence read,
sorted, sliced), run from this process against the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: devstack runs from the checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
import socketio

from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.core.tokens import TokenService
from chat.models import UserRecord
from devstack.cluster import RedisFleet
from devstack.net import pick_free_ports
from devstack.nodes import ChatNodeProcess, node_env

PAGE = 100
CHUNK = 500


class Store:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.roster = ClusterRoster(cluster)
        self.accounts = ClusterAccounts(cluster, self.roster)
        big = 10**9
        self.rooms = ClusterRooms(cluster, self.roster, rooms_per_user=big, created_per_user=big)
        self.presence = ClusterPresence(cluster, "bench", self.roster)

    async def user(self, name: str) -> str:
        uid = "b" + secrets.token_hex(6)
        record = UserRecord(uid, f"{uid}@example.com", name, int(time.time()))
        assert await self.accounts.create(record, f"{uid}@example.com", "not-a-hash")
        return uid

    async def room(self, owner: str, size: int) -> str:
        """A public room of ``size`` members (the owner included), a tenth of them online."""
        rid = "bench-" + secrets.token_hex(4)
        await self.rooms.create(rid, rid, False, owner)
        for start in range(1, size, CHUNK):
            names = [
                f"{random.choice('abcdefghij')}user {secrets.token_hex(3)}"
                for _ in range(min(CHUNK, size - start))
            ]
            uids = await asyncio.gather(*(self.user(n) for n in names))
            await asyncio.gather(*(self.rooms.add_member(rid, u) for u in uids))
            online = [u for u in uids if random.random() < 0.1]
            await asyncio.gather(*(self.roster.presence(u, True, 1) for u in online))
        return rid

    async def old_members(self, rid: str, offset: int) -> list[Any]:
        """The replaced algorithm: cost proportional to the room."""
        key = f"{{r:{rid}}}:members"
        ids = [m.decode() for m in await self.cluster.send(key, "SMEMBERS", key)]
        users = await self.accounts.users(ids)
        online = await self.presence.online(list(users))
        ordered = sorted(users.values(), key=lambda u: (not online[u.id], u.name.lower(), u.id))
        return ordered[offset : offset + PAGE]


def masters_stats(fleet: RedisFleet) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command, summed over the cluster's masters."""
    total: dict[str, list[int]] = {}
    for proc in fleet.masters():
        stats = redis.Redis(host=proc.host, port=proc.port).info("commandstats")
        for name, row in stats.items():
            entry = total.setdefault(name.removeprefix("cmdstat_"), [0, 0])
            entry[0] += int(row["calls"])
            entry[1] += int(row["usec"])
    return {name: (calls, usec) for name, (calls, usec) in total.items()}


async def measure(
    client: socketio.AsyncClient, fleet: RedisFleet, rid: str, calls: int, count: int
) -> dict[str, Any]:
    before = masters_stats(fleet)
    latencies = []
    for _ in range(calls):
        offset = random.randrange(max(1, count - PAGE))
        started = time.perf_counter()
        ack = await client.call("members", {"room": rid, "offset": offset, "limit": PAGE})
        latencies.append((time.perf_counter() - started) * 1000)
        assert ack["ok"] and ack["count"] == count, ack
    after = masters_stats(fleet)
    delta = {
        n: (c - before.get(n, (0, 0))[0], u - before.get(n, (0, 0))[1])
        for n, (c, u) in after.items()
    }
    delta = {n: cu for n, cu in delta.items() if cu[0] and n != "info"}
    return {
        "p50_ms": round(statistics.median(latencies), 3),
        "redis_commands_per_call": round(sum(c for c, _ in delta.values()) / calls, 2),
        "redis_usec_per_call": round(sum(u for _, u in delta.values()) / calls, 1),
        "commands": {n: round(c / calls, 2) for n, (c, _) in sorted(delta.items())},
    }


async def run(
    fleet: RedisFleet, url: str, secret: str, sizes: list[int], calls: int
) -> list[dict[str, Any]]:
    cluster = Cluster([(p.host, p.port) for p in fleet.cluster], node_id="bench")
    await cluster.start(30)
    store = Store(cluster)
    owner = await store.user("bench owner")
    rooms = [(size, await store.room(owner, size)) for size in sizes]
    lobby = int(await cluster.send("{r:lobby}:roster", "ZCARD", "{r:lobby}:roster"))
    rooms.append((lobby, "lobby"))
    token = TokenService(signing_key=secret, issuer="chat").issue(owner, "bench owner")[0]
    client = socketio.AsyncClient()
    await client.connect(url, auth={"token": token}, transports=["websocket"])
    rows = []
    for size, rid in rooms:
        row = {"room": "lobby" if rid == "lobby" else "room", "members": size}
        row.update(await measure(client, fleet, rid, calls, size))
        old = []
        for _ in range(10):
            started = time.perf_counter()
            await store.old_members(rid, random.randrange(max(1, size - PAGE)))
            old.append((time.perf_counter() - started) * 1000)
        row["old_p50_ms"] = round(statistics.median(old), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    await client.disconnect()
    await cluster.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,5000")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp, RedisFleet(replicas=0) as fleet:
        env = node_env(fleet.shards_env, fleet.cluster_env, secret, event_limits="*=100000/100000")
        node = ChatNodeProcess("members0", pick_free_ports(1)[0], env, Path(tmp) / "node.log")
        node.start()
        try:
            rows = asyncio.run(run(fleet, node.url, secret, sizes, args.calls))
        finally:
            node.stop()
    small, big = rows[0], rows[-2]
    print(
        f"per call, {big['members']} vs {small['members']} members: "
        f"latency x{big['p50_ms'] / small['p50_ms']:.2f}, "
        f"Redis commands x{big['redis_commands_per_call'] / small['redis_commands_per_call']:.2f}, "
        f"Redis time x{big['redis_usec_per_call'] / small['redis_usec_per_call']:.2f}; "
        f"the replaced algorithm: x{big['old_p50_ms'] / small['old_p50_ms']:.1f}"
    )


if __name__ == "__main__":
    main()

"""Adding and removing a pub/sub shard on a running stack (issue 15, items 1 and 2): the
operator's ``chat shards`` (a process, as ``kubectl exec`` runs it) changes the record, both
nodes follow it live while users keep sending DMs and room messages, and every socket gets
every message once, in order per room, without calling ``sync``.  Then every refusal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from redis_fixtures import access
from sioclient import Client
from stack import User, register, start_stack

from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.shardset import ClusterShardSet
from chat.models import RECEIVE, STEADY, Layout
from devstack.cluster import RedisFleet
from devstack.nodes import node_env
from shardring import HashRing

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"event_limits": "*=1000/1000"}  # the senders must not be throttled


def first_two(fleet: RedisFleet) -> str:
    return ",".join(f"{n}={u}" for n, u in list(fleet.shard_urls.items())[:2])


async def chat_shards(fleet: RedisFleet, secret: str, *args: str) -> tuple[int, str, str]:
    """``chat shards ARGS`` with a node's environment; (exit code, stdout, stderr)."""
    env = node_env(first_two(fleet), fleet.cluster_env, secret, **fleet.node_options())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat", "shards", "--wait", "60", *args,
        env={**os.environ, **env}, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def readyz(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/readyz", timeout=5) as reply:  # noqa: S310 - local
        return json.load(reply)


async def moving_users(url: str, fleet: RedisFleet, before: list[str], after: list[str]):
    """Users, at least one of whose channel ``user:<id>`` changes shard between the rings."""
    old, new = HashRing(before), HashRing(after)
    users: list[User] = []
    while len(users) < 8 or not any(
        old.get(f"user:{u.id}") != new.get(f"user:{u.id}") for u in users
    ):
        users.append(await register(url))
    return users


class Traffic:
    """Pairs of users exchanging DMs and everyone writing in the lobby, until stopped; every
    acknowledged message is kept, and every message each socket receives."""

    def __init__(self, clients: dict[str, Client]) -> None:
        self.clients = clients
        self.acked: list[dict] = []
        self.stop = asyncio.Event()
        self.progress = asyncio.Condition()

    async def sender(self, me: str, peer: str) -> None:
        client, n = self.clients[me], 0
        while not self.stop.is_set():
            n += 1
            dm = await client.call("dm", {"to": peer, "text": f"{me}->{peer} {n}"}, timeout=10)
            room = await client.call("send", {"room": "lobby", "text": f"{me} {n}"}, timeout=10)
            for ack in (dm, room):
                assert ack["ok"], ack
                self.acked.append(ack["message"])
            async with self.progress:
                self.progress.notify_all()

    async def more(self, count: int) -> None:
        """Until ``count`` more messages were acknowledged."""
        target = len(self.acked) + count
        async with asyncio.timeout(20), self.progress:
            await self.progress.wait_for(lambda: len(self.acked) >= target)

    async def received_everything(self, client: Client, rooms: set[str]) -> None:
        """Every message acknowledged in ``rooms`` reaches the socket once, in order."""
        wanted = {m["id"] for m in self.acked if m["room"] in rooms}
        seen: defaultdict[str, list[int]] = defaultdict(list)
        ids: list[str] = []
        while not wanted <= set(ids):
            message = await client.next("message", timeout=15)
            ids.append(message["id"])
            seen[message["room"]].append(message["seq"])
        assert len(ids) == len(set(ids)), "a message was delivered twice"
        for seqs in seen.values():  # strictly increasing and gap-free, without sync
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def test_a_shard_is_added_then_another_removed_under_traffic(
    make_fleet, tmp_path, jwt_secret
):
    fleet = make_fleet()
    names = list(fleet.shard_urls)
    with start_stack(
        fleet, tmp_path / "nodes", jwt_secret, nodes=2, shards=first_two(fleet), **LIMITS
    ) as stack:
        users = await moving_users(stack.url(0), fleet, names[:2], names)
        clients: dict[str, Client] = {}
        async with contextlib.AsyncExitStack() as closing:
            for i, user in enumerate(users):
                clients[user.id] = await Client().connect(stack.url(i % 2), user.token)
                closing.push_async_callback(clients[user.id].close)
            traffic = Traffic(clients)
            pairs = [(users[i].id, users[i + 1].id) for i in range(0, len(users) - 1, 2)]
            senders = [asyncio.create_task(traffic.sender(a, b)) for a, b in pairs]

            code, out, err = await chat_shards(
                fleet, jwt_secret, "add", f"{names[2]}={fleet.shard_urls[names[2]]}"
            )
            assert code == 0, err
            assert out.startswith("epoch 2 steady")
            code, out, err = await chat_shards(fleet, jwt_secret, "remove", names[0])
            assert code == 0, err
            assert out.startswith("epoch 3 steady") and names[0] not in out
            await traffic.more(20)  # some traffic on the final layout too
            traffic.stop.set()
            await asyncio.gather(*senders)

            assert len(traffic.acked) > 40
            for me, client in clients.items():
                rooms = {"lobby"} | {m["room"] for m in traffic.acked if me in m["room"]}
                await traffic.received_everything(client, rooms)

        for i in range(2):
            detail = readyz(stack.url(i))
            assert detail["shardset"]["epoch"] == 3 and detail["shardset"]["phase"] == "steady"
            assert set(detail["shards"]) == set(names[1:])
        code, out, _ = await chat_shards(fleet, jwt_secret, "status")
        assert code == 0
        assert "epoch 3 steady" in out
        assert (
            sum(
                line.startswith("node ") and line.endswith(" 3 steady") for line in out.splitlines()
            )
            == 2
        )


async def test_a_node_killed_mid_change_stops_counting_when_its_lease_lapses(
    make_fleet, tmp_path, jwt_secret
):
    fleet = make_fleet()
    names = list(fleet.shard_urls)
    leases = {"lease_ttl": "3", "lease_renew": "1"}
    with start_stack(
        fleet, tmp_path / "nodes", jwt_secret, nodes=2, shards=first_two(fleet), **LIMITS, **leases
    ) as stack:
        users = await moving_users(stack.url(0), fleet, names[:2], names)
        clients: dict[str, Client] = {}
        async with contextlib.AsyncExitStack() as closing:
            for user in users:  # all on the node that survives
                clients[user.id] = await Client().connect(stack.url(0), user.token)
                closing.push_async_callback(clients[user.id].close)
            traffic = Traffic(clients)
            pairs = [(users[i].id, users[i + 1].id) for i in range(0, len(users) - 1, 2)]
            senders = [asyncio.create_task(traffic.sender(a, b)) for a, b in pairs]
            url = fleet.shard_urls[names[2]]
            change = asyncio.create_task(chat_shards(fleet, jwt_secret, "add", f"{names[2]}={url}"))
            await until_record(fleet, lambda layout: layout.epoch == 2)
            stack.nodes[1].kill()  # mid-change: it never acknowledges another step
            code, out, err = await change
            assert code == 0, err
            assert out.startswith("epoch 2 steady")
            traffic.stop.set()
            await asyncio.gather(*senders)
            for me, client in clients.items():
                rooms = {"lobby"} | {m["room"] for m in traffic.acked if me in m["room"]}
                await traffic.received_everything(client, rooms)
        assert readyz(stack.url(0))["shardset"] == {"epoch": 2, "phase": "steady", "acked": True}


async def until_record(fleet: RedisFleet, reached, timeout: float = 30.0) -> None:
    """Poll the record (the cluster has nothing to wait on) until ``reached(layout)``."""
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    try:
        async with asyncio.timeout(timeout):
            while True:
                layout = await ClusterShardSet(cluster).read()
                if layout is not None and reached(layout):
                    return
                await asyncio.sleep(0.05)
    finally:
        await cluster.stop()


async def test_every_refused_change_says_why_and_changes_nothing(make_fleet, tmp_path, jwt_secret):
    fleet = make_fleet(shards=2, masters=3, replicas=0)
    names = list(fleet.shard_urls)
    one = f"{names[0]}={fleet.shard_urls[names[0]]}"
    with start_stack(fleet, tmp_path / "nodes", jwt_secret, nodes=1, shards=one):
        _, listed, _ = await chat_shards(fleet, jwt_secret, "list")
        assert listed.startswith("epoch 1 steady")
        refusals = [
            (("add", "bad name!=redis://127.0.0.1:1"), "not a shard name"),
            (("add", "x=http://127.0.0.1:1"), "not a redis:// or rediss:// URL"),
            (("add", "x=redis://u:hunter2@127.0.0.1:1"), "credentials"),
            (("add", one), "exists already"),
            (("add", f"x={fleet.shard_urls[names[0]]}"), "already"),
            (("add", "x=redis://127.0.0.1:1"), "does not answer PING"),
            (("add", "x=redis://127.0.0.1:1", "--weight", "0"), "1..100"),
            (("remove", "nope"), "no shard 'nope'"),
            (("remove", names[0]), "last shard"),
        ]
        for args, why in refusals:
            code, out, err = await chat_shards(fleet, jwt_secret, *args)
            assert (code, out) == (2, ""), (args, err)
            assert why in err and "hunter2" not in err, (args, err)
            assert (await chat_shards(fleet, jwt_secret, "list"))[1] == listed

        # A change left half-way (its coordinator gone): refused until resumed.
        both = dict(fleet.shard_urls)
        await write_record(fleet, Layout(2, both, {names[0]: both[names[0]]}, RECEIVE), (1, STEADY))
        code, _, err = await chat_shards(fleet, jwt_secret, "remove", names[0])
        assert code == 2 and "epoch 2, phase receive" in err and "chat shards resume" in err
        code, out, err = await chat_shards(fleet, jwt_secret, "resume")
        assert code == 0, err
        assert out.startswith("epoch 2 steady")


async def write_record(fleet: RedisFleet, layout: Layout, expected: tuple[int, str]) -> None:
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    try:
        assert await ClusterShardSet(cluster).write(layout, expected)
    finally:
        await cluster.stop()

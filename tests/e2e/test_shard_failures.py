"""A pub/sub shard that fails never stalls a send (issue 15, item 0).

One shard (the one the receiver's user channel lives on) is made sick as an operator would see
it: paused (SIGSTOP: TCP open, nothing answers; briefly, and long enough for the nodes to
drop their connections to it), refusing connections (killed, then started
again on its port), partitioned away (a proxy holds every byte both ways) or answering slowly
(the proxy delays every chunk).  While it stays sick, every DM to that user is acknowledged:
the message is durable before it is published, and publishing is bounded.  Once the shard is
well again, the receiver gets the messages it missed live, without anything new being sent,
in order and once, and history has them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sioclient import Client
from stack import register, start_stack
from tcpproxy import TcpProxy

from devstack.cluster import RedisFleet
from shardring import HashRing

pytestmark = pytest.mark.slow

MISSED = 3  # DMs sent while the shard is sick


def victim_of(fleet: RedisFleet, user_id: str):
    """The shard process that the ring puts ``user:<id>`` on (as every node computes it)."""
    name = HashRing(list(fleet.shard_urls)).get(f"user:{user_id}")
    return next(p for p in fleet.shards if p.name == name)


@contextlib.asynccontextmanager
async def sick(kind: str, fleet: RedisFleet, shard, proxy: TcpProxy | None) -> AsyncIterator[None]:
    if kind in ("pause", "long pause"):
        shard.pause()
    elif kind == "refuse":
        shard.kill()
    elif kind == "partition":
        assert proxy is not None
        proxy.hold()
    else:
        assert proxy is not None
        proxy.slow(3.0)
    try:
        yield
    finally:
        if kind in ("pause", "long pause"):
            shard.resume()
        elif kind == "refuse":
            shard.start()
        elif proxy is not None:
            proxy.heal()


async def noticed(url: str, shard: str) -> None:
    """Until the node at ``url`` reports its connection to ``shard`` gone (its listener gave
    up on a silent server): remote state, polled."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(20):
        while True:
            async with http.get(f"{url}/readyz") as reply:
                if not (await reply.json())["shards"][shard]["connected"]:
                    return
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("kind", ["pause", "long pause", "refuse", "partition", "slow"])
async def test_a_sick_shard_never_stalls_a_send_and_nothing_acked_is_missed(
    kind, make_fleet, tmp_path, jwt_secret
):
    fleet = make_fleet()
    ann_user, bob_user = None, None
    async with contextlib.AsyncExitStack() as stack_of:
        # Users first (any node will do), so the victim is known before the stack starts.
        with start_stack(fleet, tmp_path / "setup", jwt_secret, nodes=1) as setup:
            ann_user, bob_user = await register(setup.url(0)), await register(setup.url(0))
        shard = victim_of(fleet, bob_user.id)
        shards = dict(fleet.shard_urls)
        proxy = None
        if kind in ("partition", "slow"):
            proxy = stack_of.enter_context(TcpProxy("127.0.0.1", shard.port))
            shards[shard.name] = f"redis://127.0.0.1:{proxy.port}"
        shards_env = ",".join(f"{n}={u}" for n, u in shards.items())
        nodes = stack_of.enter_context(
            start_stack(fleet, tmp_path / "nodes", jwt_secret, nodes=2, shards=shards_env)
        )
        ann = await Client().connect(nodes.url(0), ann_user.token)
        bob = await Client().connect(nodes.url(1), bob_user.token)
        stack_of.push_async_callback(ann.close)
        stack_of.push_async_callback(bob.close)

        first = await ann.call("dm", {"to": bob_user.id, "text": "before"})
        assert (await bob.next("message"))["id"] == first["message"]["id"]

        async with sick(kind, fleet, shard, proxy):
            # Acknowledged while the shard is still sick: nothing waits for it to recover.
            acks = [
                await ann.call("dm", {"to": bob_user.id, "text": f"while {n}"}, timeout=10)
                for n in range(MISSED)
            ]
            if kind == "long pause":  # the receiving node noticed; sends still go through
                await noticed(nodes.url(1), shard.name)
                acks.append(await ann.call("dm", {"to": bob_user.id, "text": "noticed"}))
            assert all(ack["ok"] for ack in acks), acks

        # Nothing new is sent: the receiver's node catches up by itself once it hears the
        # shard again (a replaced connection, or a stall that ended).
        missed = [await bob.next("message", timeout=30) for _ in acks]
        assert [m["id"] for m in missed] == [a["message"]["id"] for a in acks]

        after = await ann.call("dm", {"to": bob_user.id, "text": "after"})
        assert (await bob.next("message", timeout=10))["id"] == after["message"]["id"]
        assert bob.pending("message") == []  # each once
        room = after["message"]["room"]
        synced = await bob.call("sync", {"rooms": {room: 0}})
        assert [m["seq"] for m in synced["rooms"][room]["messages"]] == list(
            range(1, len(acks) + 3)
        )

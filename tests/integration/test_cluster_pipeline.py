"""The cluster client's pipelining (chat/adapters/cluster/pipeline.py) on a real cluster:
durable writes that reach a master while its durable batch is in flight wait for it, then
leave together behind one ``WAIT`` (group commit); and a master that holds its replies delays
no other master's callers, not even those sent in the same batch."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_fixtures import access

from chat.adapters.cluster import pipeline
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.scripts import Script


async def test_durable_writes_behind_a_batch_in_flight_share_one_wait(redis_clean):
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_clean.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(redis_clean))
    await cluster.start(10)
    master = redis_clean.master_for_key("{g}")
    other = next(k for k in ("{a}", "{b}", "{c}", "{d}") if redis_clean.master_for_key(k) != master)
    admin = Redis(host=master.host, port=master.port)
    try:
        await cluster.send("{g}:0", "SET", "{g}:0", "warm", durable=True)  # connections open
        await admin.config_resetstat()
        await admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        first = asyncio.ensure_future(cluster.send("{g}:1", "SET", "{g}:1", "1", durable=True))
        later = []
        # Each in a batch of its own, a round trip to another master between them: answered
        # while this master holds the writes.
        for n in range(2, 5):
            await cluster.send(other, "GET", other)
            later.append(
                asyncio.ensure_future(
                    cluster.send(f"{{g}}:{n}", "SET", f"{{g}}:{n}", n, durable=True)
                )
            )
        await cluster.send(other, "GET", other)
        assert not first.done() and not any(t.done() for t in later)  # writes are paused
        await admin.execute_command("CLIENT", "UNPAUSE")
        assert await asyncio.gather(first, *later) == [b"OK"] * 4
        stats = await admin.info("commandstats")
        assert stats["cmdstat_wait"]["calls"] == 2  # the first batch's, then all the others'
        assert stats["cmdstat_set"]["calls"] == 4
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await cluster.stop()


async def test_a_command_nothing_answers_fails_with_a_timeout_by_the_sweeper(
    redis_clean, monkeypatch
):
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_clean.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(redis_clean))
    await cluster.start(10)
    master = redis_clean.master_for_key("{s}")
    admin = Redis(host=master.host, port=master.port)
    try:
        assert await cluster.send("{s}:k", "GET", "{s}:k") is None  # its connection is open
        # From now on a command is due within 0.3 s; the connection itself waits 5 s.
        monkeypatch.setattr(pipeline, "COMMAND_TIMEOUT", 0.3)
        monkeypatch.setattr(pipeline, "SWEEP_EVERY", 0.1)
        await admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):
            await cluster._pipeline.enqueue(pipeline.Command("{s}:k", ("GET", "{s}:k")))
        assert asyncio.get_running_loop().time() - started < 1.0
        await admin.execute_command("CLIENT", "UNPAUSE")
        # The late reply is dropped, not matched to the next command.
        await cluster.send("{s}:k", "SET", "{s}:k", "v")
        assert await cluster.send("{s}:k", "GET", "{s}:k") == b"v"
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await cluster.stop()


async def test_a_script_its_master_lost_is_loaded_again_and_runs_once(redis_clean):
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_clean.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(redis_clean))
    await cluster.start(10)
    count = Script(cluster, "return redis.call('INCR', KEYS[1])")
    try:
        assert await count(["{n}:c"], [], durable=True) == 1
        for master in redis_clean.masters():  # as a promoted replica that never loaded it
            async with Redis(host=master.host, port=master.port) as admin:
                await admin.script_flush()
        # One durable batch: the script (refused, loaded, sent again) and a write that ran.
        got = await asyncio.gather(
            count(["{n}:c"], [], durable=True),
            cluster.send("{n}:x", "INCR", "{n}:x", durable=True),
            count(["{m}:c"], []),
        )
        assert got == [2, 1, 1]
        assert await cluster.send("{n}:x", "GET", "{n}:x") == b"1"  # not run twice
    finally:
        await cluster.stop()

"""The cluster pipeline's own connection (chat/adapters/resp.py) against real servers:
pipelined batches answered in order, error replies as values, and every failure (a lost
connection, a server that stops answering, a refused password) ending every batch in flight
and closing the connection for good."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ConnectionError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_fixtures import access

from chat.adapters.redis_common import RedisAccess
from chat.adapters.resp import RespConnection
from devstack.cluster import RedisFleet


async def connect(fleet: RedisFleet, timeout: float = 5.0, **kw) -> RespConnection:
    shard = fleet.shards[0]
    return await RespConnection.open(
        shard.host, shard.port, access=kw.pop("access", access(fleet)), client_name="resp-test",
        timeout=timeout, **kw,
    )  # fmt: skip


def admin(fleet: RedisFleet) -> Redis:
    o, shard = fleet.node_options(), fleet.shards[0]
    return Redis(
        host=shard.host, port=shard.port, username=o.get("redis_username"),
        password=o.get("redis_password"),
    )  # fmt: skip


async def test_batches_in_flight_are_answered_in_order_with_errors_as_values(redis_clean):
    conn = await connect(redis_clean)
    try:
        first = conn.send([("SET", "k", "1"), ("INCR", "k"), ("HGET", "k", "f")])
        second = conn.send([("EVALSHA", "0" * 40, 0), ("GET", "k")])
        third = conn.send([("HSET", "h", "a", "1"), ("HGETALL", "h"), ("CLIENT", "GETNAME")])
        ok, incr, wrong_type = await first
        assert (ok, incr) == (b"OK", 2)
        assert isinstance(wrong_type, ResponseError) and "WRONGTYPE" in str(wrong_type)
        missing, value = await second
        assert isinstance(missing, NoScriptError) and value == b"2"
        assert await third == [1, {b"a": b"1"}, b"resp-test"]  # RESP3: a map is a dict
    finally:
        conn.close()


async def test_a_lost_connection_fails_every_batch_in_flight_and_stays_closed(redis_clean):
    closed: list[RespConnection] = []
    conn = await connect(redis_clean, on_close=closed.append)
    ident = (await conn.send([("CLIENT", "ID")]))[0]
    blocked = [conn.send([("BLPOP", "nothing", 10)]), conn.send([("PING",)])]
    async with admin(redis_clean) as other:
        assert await other.client_kill_filter(_id=ident) == 1
    for batch in blocked:
        with pytest.raises(ConnectionError):
            await batch
    assert conn.closed and closed == [conn]
    with pytest.raises(ConnectionError):
        conn.send([("PING",)])


async def test_a_server_that_stops_answering_times_out_every_batch_and_closes(redis_clean):
    conn = await connect(redis_clean, timeout=0.3)
    async with admin(redis_clean) as other:
        await other.execute_command("CLIENT", "PAUSE", 2000, "ALL")
        try:
            batches = [conn.send([("PING",)]), conn.send([("GET", "k")])]
            for batch in batches:
                with pytest.raises(RedisTimeoutError):
                    await batch
        finally:
            await other.execute_command("CLIENT", "UNPAUSE")
    assert conn.closed  # a late reply must never be matched to a later command
    again = await connect(redis_clean, timeout=0.3)
    assert await again.send([("PING",)]) == [b"PONG"]
    again.close()


async def test_the_handshake_authenticates_and_refuses_a_wrong_password(redis_fleet_acl):
    conn = await connect(redis_fleet_acl)
    assert await conn.send([("ACL", "WHOAMI")]) == [b"chat"]
    conn.close()
    wrong = RedisAccess(username="chat", password="not-it")
    with pytest.raises(AuthenticationError):
        await connect(redis_fleet_acl, access=wrong)
    with pytest.raises(AuthenticationError):
        await connect(redis_fleet_acl, access=RedisAccess())  # no password at all


async def test_an_unreachable_server_is_a_connection_error(redis_clean):
    with pytest.raises(ConnectionError):
        await RespConnection.open(
            "127.0.0.1", 1, access=RedisAccess(), client_name="x", timeout=1.0
        )

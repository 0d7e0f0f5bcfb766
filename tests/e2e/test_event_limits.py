"""Per-user limits of everything a client can repeat: on real nodes with small limits each kind
of limit binds across nodes (the table covering every event and route: unit/test_event_table.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
import socketio
from sioclient import Client, connected
from stack import Stack, register, start_stack
from test_accounts import call
from test_rooms import room_id

from chat import keys

# A rate of 0.01/s: no token comes back while a test runs, so counts are exact.
LIMITS = {
    "event_limits": "*=1000/1000, members=0.01/3, rename=0.01/2, me=0.01/2, connect=0.01/6,"
    " search=0.01/3, send=0.01/20",
    "connections_per_user": "2",
    "rooms_per_user": "3",
    "rooms_created_per_user": "4",
    "login_ip_rate": "100000",
}


@pytest.fixture(scope="module")
def small(redis_fleet, tmp_path_factory, jwt_secret):
    with start_stack(
        redis_fleet, tmp_path_factory.mktemp("small"), jwt_secret, nodes=2, **LIMITS
    ) as stack:
        yield stack


async def test_a_socket_event_is_limited_per_user_across_nodes(small: Stack):
    user, other = await register(small.url(0)), await register(small.url(1))
    async with connected(small.url(0), user.token) as a, connected(small.url(1), user.token) as b:
        acks = [await (a, b)[i % 2].call("members", {"room": "lobby"}) for i in range(4)]
        assert [ack["ok"] for ack in acks] == [True, True, True, False]
        error = acks[3]["error"]
        assert error["code"] == "rate_limited" and error["retry_after"] > 1
        # Other events have rows of their own, other users buckets of their own.
        assert (await a.call("history", {"room": "lobby"}))["ok"]
        async with connected(small.url(1), other.token) as c:
            assert (await c.call("members", {"room": "lobby"}))["ok"]


async def test_rest_routes_share_the_row_of_their_event_and_say_when_to_retry(small: Stack):
    user = await register(small.url(0))
    async with connected(small.url(1), user.token) as socket:
        assert (await socket.call("rename", {"name": "first"}))["ok"]
        status, _, _ = await call("PATCH", small.url(0) + "/api/me", {"name": "second"}, user.token)
        assert status == 200
        status, body, resp = await call(
            "PATCH", small.url(1) + "/api/me", {"name": "third"}, user.token
        )
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1 and body["error"]["retry_after"] > 1
    statuses = [
        (await call("GET", small.url(i % 2) + "/api/me", None, user.token))[0] for i in range(3)
    ]
    assert statuses == [200, 200, 429]


async def refused(url: str, token: str) -> dict:
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, token)
    return client.connect_error


async def registered_connections(stack: Stack, user_id: str, count: int) -> None:
    """Wait until the cluster's registry holds ``count`` sockets of the user (a disconnect is
    processed by the server after the client has gone: there is no event to await)."""
    key = keys.user_conns_key(user_id)
    deadline = time.monotonic() + 10
    while stack.fleet.master_for_key(key).command("HLEN", key) != count:
        assert time.monotonic() < deadline, "the registry never reached the count"
        await asyncio.sleep(0.05)


async def test_connections_per_user_are_bounded_across_nodes(small: Stack):
    user = await register(small.url(0))
    first = await Client().connect(small.url(0), user.token)
    try:
        async with connected(small.url(1), user.token):
            error = await refused(small.url(0), user.token)
            assert error["code"] == "too_many_connections" and "2" in error["message"]
        await registered_connections(small, user.id, 1)
        async with connected(small.url(1), user.token) as again:  # room for one more
            assert (await again.call("history", {"room": "lobby"}))["ok"]
    finally:
        await first.close()


async def test_handshakes_are_rate_limited_per_user_even_when_refused(small: Stack):
    user = await register(small.url(1))
    async with connected(small.url(0), user.token), connected(small.url(1), user.token):
        codes = [(await refused(small.url(i % 2), user.token))["code"] for i in range(5)]
    assert codes == ["too_many_connections"] * 4 + ["rate_limited"]


async def create(stack: Stack, user, rid: str, node: int = 0) -> tuple[int, dict]:
    status, body, _ = await call("POST", stack.url(node) + "/api/rooms", {"id": rid}, user.token)
    return status, body


async def test_rooms_a_user_belongs_to_are_bounded_for_creates_joins_and_invites(small: Stack):
    user, host = await register(small.url(0)), await register(small.url(1))
    mine = [room_id() for _ in range(3)]
    for rid in mine:
        assert (await create(small, user, rid))[0] == 201
    status, body = await create(small, user, room_id(), node=1)
    assert (status, body["error"]["code"]) == (403, "too_many")
    public, private = room_id(), room_id()
    assert (await create(small, host, public))[0] == 201
    status, _, _ = await call(
        "POST", small.url(1) + "/api/rooms", {"id": private, "private": True}, host.token
    )
    assert status == 201
    async with connected(small.url(0), user.token) as u, connected(small.url(1), host.token) as h:
        assert (await u.call("join", {"room": public}))["error"]["code"] == "too_many"
        ack = await h.call("invite", {"room": private, "user": user.id})
        assert ack["error"]["code"] == "too_many"
        assert (await u.call("join", {"room": "lobby"}))["ok"]  # the lobby does not count
        assert (await u.call("leave", {"room": mine[0]}))["ok"]
        assert (await u.call("join", {"room": public}))["ok"]
        assert (await u.call("join", {"room": public}))["ok"]  # already in: no room needed
        ack = await h.call("invite", {"room": private, "user": user.id})  # full again
        assert ack["error"]["code"] == "too_many"


async def test_rooms_a_user_ever_created_are_bounded_and_a_taken_id_costs_nothing(small: Stack):
    user, other = await register(small.url(0)), await register(small.url(1))
    taken = room_id()
    assert (await create(small, other, taken))[0] == 201
    for _ in range(3):
        assert (await create(small, user, taken))[0] == 409
    rooms = [room_id() for _ in range(4)]
    async with connected(small.url(1), user.token) as u:
        for rid in rooms:
            assert (await create(small, user, rid))[0] == 201  # the 409s were not counted
            assert (await u.call("leave", {"room": rid}))["ok"]
    status, body = await create(small, user, room_id())
    assert (status, body["error"]["code"]) == (403, "too_many")
    assert "create at most 4" in body["error"]["message"]


async def test_a_burst_sent_at_once_is_served_up_to_the_burst(small: Stack):
    """A bot may fire its whole burst without awaiting each ack: every message of it is
    served, and only the next one is refused (a node's leases of the bucket must not draw
    more tokens than the sends they serve)."""
    user = await register(small.url(0))
    async with connected(small.url(0), user.token) as bot:
        burst = [bot.call("dm", {"to": user.id, "text": f"n{i}"}) for i in range(20)]
        acks = await asyncio.gather(*burst)
        assert [ack.get("error") for ack in acks] == [None] * 20
        refused = await bot.call("dm", {"to": user.id, "text": "one more"})
        assert refused["error"]["code"] == "rate_limited"
        history = await bot.call("history", {"room": f"dm:{user.id}:{user.id}", "limit": 100})
        assert sorted(m["text"] for m in history["messages"]) == sorted(f"n{i}" for i in range(20))


async def test_a_dm_does_not_count_as_a_room(small: Stack):
    user, peer = await register(small.url(0)), await register(small.url(1))
    async with connected(small.url(0), user.token) as u:
        assert (await u.call("dm", {"to": peer.id, "text": "hi"}))["ok"]
        for _ in range(3):  # as many as allowed, the DM aside
            assert (await create(small, user, room_id()))[0] == 201


async def test_user_search_has_its_own_row_shared_by_its_route_across_nodes(small: Stack):
    user = await register(small.url(0))
    async with connected(small.url(1), user.token) as a:
        answers = [(await a.call("users", {"prefix": "a"}))["ok"] for _ in range(2)]
        status, _, _ = await call("GET", f"{small.url(0)}/api/users?prefix=a", token=user.token)
        assert answers == [True, True] and status == 200
        refused = await a.call("users", {"prefix": "a"})
        assert refused["error"]["code"] == "rate_limited" and refused["error"]["retry_after"] > 1
        status, body, resp = await call(
            "GET", f"{small.url(0)}/api/users?prefix=a", token=user.token
        )
        assert status == 429 and body["error"]["code"] == "rate_limited"
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await a.call("blocks", {}))["ok"]  # another row

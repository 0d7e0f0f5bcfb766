"""``members`` pages from each room's roster in the cluster: online first, then by name, with
offsets, a total count and ``has_more``, and it stays in order through renames, leaves and
presence changes (the per-call cost, which must not grow with the room, is measured by
``bench/members_cost.py``)."""

from __future__ import annotations

import asyncio
import secrets

from sioclient import Client, connected
from stack import Stack, register
from test_accounts import call
from test_rooms import make_room, room_id

from chat import keys

GRACE = 5.0


def expected(members: dict[str, tuple[str, bool]]) -> list[dict]:
    """``{id: (name, online)}`` in the contract's order."""
    rows = [{"id": u, "name": n, "online": o} for u, (n, o) in members.items()]
    return sorted(rows, key=lambda r: (not r["online"], r["name"].lower(), r["id"]))


async def all_pages(client: Client, room: str, limit: int) -> tuple[list[dict], list[bool], int]:
    rows, more, offset = [], [], 0
    while True:
        ack = await client.call("members", {"room": room, "offset": offset, "limit": limit})
        assert ack["ok"], ack
        # Issue 17: each row has the member's role; the order is what these tests check.
        assert all(m.pop("role") in ("owner", "admin", "member") for m in ack["members"])
        rows += ack["members"]
        more.append(ack["has_more"])
        offset += limit
        if not ack["has_more"]:
            return rows, more, ack["count"]


async def room_of_six(stack: Stack):
    """An owner and five invited users (names out of order, mixed case, one name twice)."""
    names = ["delta", "Alpha", "charlie", "bravo", "Echo", "alpha"]
    users = await asyncio.gather(*(register(stack.url(i % 2), n) for i, n in enumerate(names)))
    rid = await make_room(stack, users[0])
    async with connected(stack.url(0), users[0].token) as owner:
        for guest in users[1:]:
            assert (await owner.call("invite", {"room": rid, "user": guest.id}))["ok"]
    return rid, users


async def test_members_page_online_first_then_by_name_and_follow_renames_and_leaves(
    stack: Stack,
):
    rid, users = await room_of_six(stack)
    owner, _, charlie, bravo, echo, _ = users
    state = {u.id: (u.name, False) for u in users}
    async with (
        connected(stack.url(0), owner.token) as o,
        connected(stack.url(1), charlie.token) as c,
        connected(stack.url(0), echo.token),
    ):
        for user in (owner, charlie, echo):
            state[user.id] = (user.name, True)
        rows, more, count = await all_pages(o, rid, 200)
        assert (rows, more, count) == (expected(state), [False], 6)
        rows, more, count = await all_pages(o, rid, 2)
        assert (rows, more, count) == (expected(state), [True, True, False], 6)
        past = await o.call("members", {"room": rid, "offset": 10, "limit": 5})
        assert (past["members"], past["count"], past["has_more"]) == ([], 6, False)

        # A rename moves the user within their section: offline to the front, online last.
        for user, name in ((bravo, "aardvark"), (charlie, "Zulu")):
            status, _, _ = await call("PATCH", stack.url(1) + "/api/me", {"name": name}, user.token)
            assert status == 200
            state[user.id] = (name, state[user.id][1])
        rows, _, _ = await all_pages(o, rid, 4)
        assert rows == expected(state)
        assert rows[2]["name"] == "Zulu" and rows[3]["name"] == "aardvark"

        assert (await c.call("leave", {"room": rid}))["ok"]
        del state[charlie.id]
        rows, more, count = await all_pages(o, rid, 3)
        assert (rows, more, count) == (expected(state), [True, False], 5)


async def test_members_follow_presence_changes_on_any_node(stack: Stack):
    rid, users = await room_of_six(stack)
    owner, *_, alpha2 = users
    state = {u.id: (u.name, False) for u in users}
    async with connected(stack.url(0), owner.token) as o:
        state[owner.id] = (owner.name, True)
        await o.call("watch", {"users": [alpha2.id]})
        late = await Client().connect(stack.url(1), alpha2.token)
        assert (await o.next("presence"))["online"] is True
        state[alpha2.id] = (alpha2.name, True)
        rows, _, count = await all_pages(o, rid, 2)
        assert (rows, count) == (expected(state), 6)
        assert [r["id"] for r in rows[:2]] == sorted(
            [owner.id, alpha2.id], key=lambda u: (state[u][0].lower(), u)
        )
        await late.close()
        assert (await o.next("presence", timeout=GRACE + 10))["online"] is False
        state[alpha2.id] = (alpha2.name, False)
        rows, _, _ = await all_pages(o, rid, 200)
        assert rows == expected(state) and rows[0]["id"] == owner.id


async def test_the_lobby_is_paged_like_any_room(stack: Stack):
    name = "!!!" + secrets.token_hex(3)  # sorts before every other name
    user = await register(stack.url(1), name)
    async with connected(stack.url(0), user.token) as u:
        ack = await u.call("members", {"room": "lobby", "offset": 0, "limit": 200})
        assert ack["members"][0] == {"id": user.id, "name": name, "online": True, "role": "member"}
        assert ack["count"] >= len(ack["members"]) and ack["has_more"] == (ack["count"] > 200)
        rows = ack["members"]
        assert rows == sorted(rows, key=lambda r: (not r["online"], r["name"].lower(), r["id"]))
        second = await u.call("members", {"room": "lobby", "offset": 1, "limit": 1})
        assert second["members"] == rows[1:2] and second["count"] == ack["count"]


async def test_a_room_listed_before_rosters_existed_is_indexed_on_first_use(stack: Stack):
    owner, other = await register(stack.url(0), "Owner"), await register(stack.url(1), "beth")
    rid = room_id()
    meta, members = keys.room_meta_key(rid), keys.room_members_key(rid)
    master = stack.fleet.master_for_key(meta)
    master.command("HSET", meta, "name", rid, "private", "0", "created_by", owner.id, "created", 0)
    master.command("SADD", members, owner.id, other.id)
    async with connected(stack.url(1), owner.token) as o:
        ack = await o.call("members", {"room": rid})
        state = {owner.id: ("Owner", True), other.id: ("beth", False)}
        # Issue 17: a room from before roles has its creator as owner.
        assert [m.pop("role") for m in ack["members"]] == ["owner", "member"]
        assert (ack["members"], ack["count"], ack["has_more"]) == (expected(state), 2, False)

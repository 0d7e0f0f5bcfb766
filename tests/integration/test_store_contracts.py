"""One suite, two implementations: the contracts of ``History`` and ``RoomStore``
(chat/ports.py) checked over the in-memory fakes (tests/fakes) and over the Redis Cluster
adapters, so that the fakes the unit tier relies on cannot drift from what Redis does."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import MemoryAccounts, MemoryHistory, MemoryRooms
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.errors import ChatError
from chat.models import Room, UserRecord, UserRef

ANN, BOB = UserRef("ann", "Ann"), UserRef("bob", "Bob")
BOUNDS = {"rooms_per_user": 3, "created_per_user": 4}


@dataclass
class Stores:
    history: Any
    rooms: Any
    accounts: Any

    async def user(self, user_id: str, name: str) -> None:
        record = UserRecord(user_id, f"{user_id}@example.com", name)
        assert await self.accounts.create(record, f"{user_id}@example.com", "hash")


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        accounts = MemoryAccounts()
        yield Stores(MemoryHistory(), MemoryRooms(accounts, **BOUNDS), accounts)
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(
        cluster, roster, rooms_per_user=BOUNDS["rooms_per_user"],
        created_per_user=BOUNDS["created_per_user"],
    )  # fmt: skip
    try:
        yield Stores(ClusterHistory(cluster), rooms, ClusterAccounts(cluster, roster))
    finally:
        await cluster.stop()


def room() -> str:
    return "r" + secrets.token_hex(4)


async def append(history: Any, room_id: str, text: str, sender: UserRef = ANN, **kw: Any):
    token = kw.pop("token", secrets.token_hex(6))
    return await history.append(secrets.token_hex(6), room_id, sender, text, kw.get("cid"), token)


# --- History ------------------------------------------------------------------------------------


async def test_history_numbers_each_room_from_one_without_gaps(stores):
    one, two = room(), room()
    seqs = [(await append(stores.history, r, "x"))[0].seq for r in (one, one, two, one)]
    assert seqs == [1, 2, 1, 3]
    assert await stores.history.last_seq(one) == 3
    assert await stores.history.last_seqs([one, two, "empty"]) == {one: 3, two: 1, "empty": 0}


async def test_history_keeps_the_message_as_sent(stores):
    r = room()
    plain, created = await append(stores.history, r, "hello")
    tagged, _ = await append(stores.history, r, "again", BOB, cid="c-1")
    assert created and (plain.room, plain.sender, plain.text, plain.cid) == (r, ANN, "hello", None)
    assert (tagged.sender, tagged.cid) == (BOB, "c-1") and tagged.ts >= plain.ts > 0


async def test_history_answers_a_repeated_token_with_the_first_message(stores):
    r = room()
    first, created = await append(stores.history, r, "once", token="t")
    again, repeated = await append(stores.history, r, "twice", token="t")
    assert created and not repeated and again == first
    other_sender, created = await append(stores.history, r, "bob's", BOB, token="t")
    assert created and other_sender.seq == 2  # the token is the sender's own


@pytest.mark.parametrize(
    ("before", "after", "limit", "seqs", "more"),
    [
        (None, None, 3, [5, 6, 7], True),
        (None, None, 10, [1, 2, 3, 4, 5, 6, 7], False),
        (5, None, 3, [2, 3, 4], True),
        (2, None, 3, [1], False),
        (None, 4, 2, [5, 6], True),
        (None, 5, 5, [6, 7], False),
        (5, 2, 10, [3, 4], False),
        (6, 1, 2, [2, 3], True),
    ],
)
async def test_history_pages(stores, before, after, limit, seqs, more):
    r = room()
    for n in range(7):
        await append(stores.history, r, f"m{n}")
    page, has_more = await stores.history.page(r, before=before, after=after, limit=limit)
    assert ([m.seq for m in page], has_more) == (seqs, more)


async def test_history_between_is_after_exclusive_upto_inclusive(stores):
    r = room()
    for n in range(6):
        await append(stores.history, r, f"m{n}")
    assert [m.seq for m in await stores.history.between(r, 2, 5, 10)] == [3, 4, 5]
    assert [m.seq for m in await stores.history.between(r, 0, 6, 2)] == [1, 2]
    assert await stores.history.between(r, 4, 4, 10) == []
    assert await stores.history.between(room(), 0, 3, 10) == []


# --- RoomStore ----------------------------------------------------------------------------------


async def test_rooms_are_created_once_with_their_creator_as_member(stores):
    await stores.user("ann", "Ann")
    r = room()
    made = await stores.rooms.create(r, "Books", False, "ann")
    assert (made.id, made.name, made.private, made.created_by) == (r, "Books", False, "ann")
    assert await stores.rooms.create(r, "Again", True, "ann") is None
    assert await stores.rooms.get(r) == made
    assert await stores.rooms.is_member(r, "ann") and not await stores.rooms.is_member(r, "bob")


async def test_the_lobby_and_dms_need_no_record(stores):
    lobby = await stores.rooms.get("lobby")
    assert (lobby.id, lobby.private) == ("lobby", False)
    assert await stores.rooms.is_member("lobby", "anyone")
    dm = await stores.rooms.get("dm:ann:bob")
    assert dm == Room("dm:ann:bob", "", True, created_by="ann")
    assert await stores.rooms.is_member("dm:ann:bob", "bob")
    assert not await stores.rooms.is_member("dm:ann:bob", "cid")
    assert await stores.rooms.get(room()) is None
    found = await stores.rooms.get_many(["lobby", "dm:ann:bob", "nowhere"])
    assert set(found) == {"lobby", "dm:ann:bob"}


async def test_membership_changes_say_whether_they_changed_anything(stores):
    for user_id, name in (("ann", "Ann"), ("bob", "Bob")):
        await stores.user(user_id, name)
    r = room()
    await stores.rooms.create(r, "R", True, "ann")
    assert await stores.rooms.add_member(r, "bob") is True
    assert await stores.rooms.add_member(r, "bob") is False
    assert r in await stores.rooms.user_rooms("bob")
    assert await stores.rooms.remove_member(r, "bob") is True
    assert await stores.rooms.remove_member(r, "bob") is False
    assert await stores.rooms.user_rooms("bob") == {"lobby"}


async def test_a_full_room_refuses_a_new_member_in_the_same_step_as_it_counts(stores):
    users = [f"u{i}" for i in range(8)]
    for user_id in ["ann", *users]:
        await stores.user(user_id, user_id.title())
    r = room()
    await stores.rooms.create(r, "R", True, "ann")  # 1 member: places for 3 more of 4
    outcomes = await asyncio.gather(
        *(stores.rooms.add_member(r, u, 4) for u in users), return_exceptions=True
    )
    joined = [u for u, out in zip(users, outcomes, strict=True) if out is True]
    refused = [out for out in outcomes if isinstance(out, ChatError)]
    assert len(joined) == 3 and [e.code for e in refused] == ["room_full"] * 5
    assert await stores.rooms.member_count(r) == 4
    for user_id in users:  # a refused user keeps no listing of the room
        assert (r in await stores.rooms.user_rooms(user_id)) == (user_id in joined)
    assert await stores.rooms.add_member(r, joined[0], 4) is False  # a member: not counted
    await stores.rooms.remove_member(r, joined[0])  # a place again: one of the refused takes it
    assert await stores.rooms.add_member(r, next(u for u in users if u not in joined), 4)


async def test_a_room_listed_for_a_user_who_is_no_member_is_not_one_of_their_rooms(stores):
    """The list is written beside the members, not with them: an invite whose second write
    failed leaves the room listed.  Only the members say whose room it is."""
    await stores.user("ann", "Ann")
    await stores.user("bob", "Bob")
    r = room()
    await stores.rooms.create(r, "R", True, "ann")
    if isinstance(stores.rooms, MemoryRooms):
        stores.rooms.lists.setdefault("bob", set()).add(r)
    else:
        key = keys.user_rooms_key("bob")
        await stores.rooms._cluster.send(key, "SADD", key, r)
    assert r in await stores.rooms.listed_rooms("bob")
    assert r not in await stores.rooms.user_rooms("bob")
    assert r in await stores.rooms.user_rooms("ann")


async def test_ids_an_older_release_let_through_are_listed_nowhere(redis_clean):
    """Before 2026-12-06 a room id with a final newline passed the rule: a public "lobby\n"
    was shown to everyone as the lobby.  Such ids are left out of every listing."""
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_clean.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(redis_clean))
    await cluster.start(10)
    try:
        rooms = ClusterRooms(cluster, ClusterRoster(cluster), rooms_per_user=3, created_per_user=3)
        public, mine = keys.public_rooms_key(), keys.user_rooms_key("ann")
        for key in (public, mine):
            await cluster.send(key, "SADD", key, "lobby\n", "fine")
        assert await rooms.public_rooms() == {"lobby", "fine"}
        assert await rooms.listed_rooms("ann") == {"lobby", "fine"}
    finally:
        await cluster.stop()


async def test_user_and_public_room_lists(stores):
    await stores.user("ann", "Ann")
    await stores.user("bob", "Bob")  # a DM is listed only for users with a record
    public, private = room(), room()
    await stores.rooms.create(public, "P", False, "ann")
    await stores.rooms.create(private, "Q", True, "ann")
    await stores.rooms.ensure_dm("dm:ann:bob")
    assert await stores.rooms.user_rooms("ann") >= {"lobby", public, private, "dm:ann:bob"}
    assert "dm:ann:bob" in await stores.rooms.user_rooms("bob")
    listed = await stores.rooms.public_rooms()
    assert {"lobby", public} <= listed and private not in listed


async def test_members_pages_are_ordered_by_name_and_counted(stores):
    names = {"u1": "carol", "u2": "Alice", "u3": "bob", "u4": "alice"}
    for user_id, name in names.items():
        await stores.user(user_id, name)
    r = room()
    await stores.rooms.create(r, "R", False, "u1")
    for user_id in ("u2", "u3", "u4"):
        await stores.rooms.add_member(r, user_id)
    page, count = await stores.rooms.members_page(r, 0, 3)
    assert count == 4
    assert [(m["id"], m["name"], m["online"]) for m in page] == [
        ("u2", "Alice", False), ("u4", "alice", False), ("u3", "bob", False),
    ]  # fmt: skip
    rest, _ = await stores.rooms.members_page(r, 3, 3)
    assert [m["id"] for m in rest] == ["u1"]


async def test_rooms_per_user_and_rooms_created_are_bounded(stores):
    for user_id in ("ann", "bob"):
        await stores.user(user_id, user_id.title())
    made = [room() for _ in range(4)]
    for r in made[:3]:
        await stores.rooms.create(r, "R", False, "bob")
    await stores.rooms.ensure_dm("dm:ann:bob")  # DMs do not count
    for r in made[:2]:
        await stores.rooms.add_member(r, "ann")
    with pytest.raises(ChatError) as err:
        await stores.rooms.create(made[3], "R", False, "bob")  # in 3 rooms already
    assert err.value.code == "too_many"
    await stores.rooms.add_member(made[2], "ann")
    with pytest.raises(ChatError) as err:
        await stores.rooms.add_member(room(), "ann")
    assert err.value.code == "too_many"
    await stores.rooms.remove_member(made[0], "bob")
    assert await stores.rooms.create(made[0], "taken", False, "bob") is None  # costs nothing
    await stores.rooms.create(made[3], "R", False, "bob")  # the 4th created
    await stores.rooms.remove_member(made[3], "bob")
    with pytest.raises(ChatError) as err:
        await stores.rooms.create(room(), "R", False, "bob")
    assert err.value.code == "too_many"

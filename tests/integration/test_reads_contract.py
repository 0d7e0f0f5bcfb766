"""One suite, two implementations: the counters the history's append keeps (message count,
own and mention seqs, ``n`` per entry, mentions found by ``@name`` in the roster), the
``ReadStore`` over them and the receipts setting of ``AccountStore``, checked over the fakes
and over the Redis Cluster adapters (issue 16, design section 4)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import MemoryAccounts, MemoryHistory, MemoryReads, MemoryRooms
from redis_fixtures import access

from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.reads import ClusterReads
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.models import RoomCounts, UserRecord, UserRef, dm_room_id

ANN, BOB, CID = UserRef("ann", "Ann"), UserRef("bob", "Bob"), UserRef("cid", "Cid Vicious")


@dataclass
class Stores:
    history: Any
    reads: Any
    rooms: Any
    accounts: Any


def _memory() -> Stores:
    accounts = MemoryAccounts()
    rooms = MemoryRooms(accounts)
    history = MemoryHistory()

    def members(room: str) -> set[str]:
        return set(accounts.records) if room == "lobby" else rooms.members.get(room, set())

    history.roster = lambda room: {u: accounts.records[u].name for u in members(room)}
    count = lambda room: 0 if room.startswith("dm:") else len(members(room))  # noqa: E731
    reads = MemoryReads(history, count)
    rooms.on_member = reads.membership
    return Stores(history, reads, rooms, accounts)


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        found = _memory()
        await _users(found)
        yield found
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(cluster, roster, rooms_per_user=100, created_per_user=100)
    try:
        found = Stores(
            ClusterHistory(cluster), ClusterReads(cluster), rooms, ClusterAccounts(cluster, roster)
        )
        await _users(found)
        yield found
    finally:
        await cluster.stop()


async def _users(stores: Stores) -> None:
    for ref in (ANN, BOB, CID):
        record = UserRecord(ref.id, f"{ref.id}@example.com", ref.name)
        assert await stores.accounts.create(record, f"{ref.id}@example.com", "hash")


async def a_room(stores: Stores, *members: str) -> str:
    room_id = "r" + secrets.token_hex(4)
    assert await stores.rooms.create(room_id, room_id, True, "ann") is not None
    for user in members:
        await stores.rooms.add_member(room_id, user)
    return room_id


async def append(
    stores: Stores,
    room_id: str,
    sender: UserRef,
    text: str = "x",
    mentions: Sequence[str] = (),
    names: Sequence[str] = (),
    token: str | None = None,
) -> Any:
    message, _ = await stores.history.append(
        secrets.token_hex(6), room_id, sender, text, None, token or secrets.token_hex(6),
        mentions=mentions, names=names,
    )  # fmt: skip
    return message


async def test_own_messages_are_not_unread_and_positions_move_forward_only(stores):
    room_id = await a_room(stores, "bob")
    for sender in (BOB, BOB, ANN, BOB):
        await append(stores, room_id, sender)
    assert await stores.reads.counts("ann", [room_id]) == {room_id: RoomCounts(4, 0, 3, 0)}
    assert await stores.reads.mark(room_id, "ann", 3) == ("moved", RoomCounts(4, 3, 1, 0), 2)
    assert await stores.reads.mark(room_id, "ann", 2) == ("same", RoomCounts(4, 3, 1, 0), 2)
    assert await stores.reads.mark(room_id, "ann", 5) == ("beyond", RoomCounts(4, 3, 1, 0), 2)
    assert await stores.reads.positions(room_id, ["ann", "bob"]) == {"ann": 3}
    assert (await stores.reads.mark(room_id, "ann", 4))[1] == RoomCounts(4, 4, 0, 0)
    assert (await stores.reads.counts("bob", [room_id]))[room_id] == RoomCounts(4, 0, 1, 0)


async def test_a_retried_append_counts_once(stores):
    room_id = await a_room(stores, "bob")
    await append(stores, room_id, BOB, token="same")
    await append(stores, room_id, BOB, token="same")
    assert (await stores.reads.counts("ann", [room_id]))[room_id] == RoomCounts(1, 0, 1, 0)


async def test_mentions_are_members_named_with_at_or_listed_never_the_sender(stores):
    room_id = await a_room(stores, "bob")  # cid is no member
    named = await append(stores, room_id, ANN, names=["bob", "ann", "cid", "nobody"])
    assert named.mentions == ["bob"]
    listed = await append(stores, room_id, ANN, mentions=["cid", "bob", "bob", "ann"])
    assert listed.mentions == ["bob"]
    assert (await append(stores, room_id, ANN)).mentions is None
    assert (await stores.reads.counts("bob", [room_id]))[room_id] == RoomCounts(3, 0, 3, 2)
    assert (await stores.reads.counts("cid", [room_id]))[room_id].mentions == 0
    page, _ = await stores.history.page(room_id, before=None, after=None, limit=10)
    assert [m.mentions for m in page] == [["bob"], ["bob"], None]  # as stored


async def test_a_dm_keeps_the_mentions_its_caller_decided(stores):
    room_id = dm_room_id("ann", "bob")
    message = await append(stores, room_id, ANN, mentions=["bob"], names=["bob"])
    assert message.mentions == ["bob"]
    counted = await stores.reads.counts("bob", [room_id])
    assert counted[room_id] == RoomCounts(1, 0, 1, 1)


async def test_counts_stop_at_100_and_many_rooms_come_at_once(stores):
    room_id, quiet = await a_room(stores, "bob"), await a_room(stores, "bob")
    for _ in range(101):
        await append(stores, room_id, BOB, mentions=["ann"])
    found = await stores.reads.counts("ann", [room_id, quiet, "lobby"])
    assert found[room_id] == RoomCounts(101, 0, 100, 100)
    assert found[quiet] == RoomCounts(0, 0, 0, 0) and set(found) == {room_id, quiet, "lobby"}
    assert (await stores.reads.mark(room_id, "ann", 2))[1] == RoomCounts(101, 2, 99, 99)


async def test_the_receipts_setting_is_kept_with_the_user_record(stores):
    assert (await stores.accounts.user("bob")).receipts is True
    await stores.accounts.set_receipts("bob", False)
    assert (await stores.accounts.user("bob")).receipts is False
    found = await stores.accounts.users(["ann", "bob"])
    assert {u: r.receipts for u, r in found.items()} == {"ann": True, "bob": False}
    await stores.accounts.set_name("bob", "Robert")
    assert (await stores.accounts.user("bob")).receipts is False


async def test_a_new_member_starts_at_the_newest_message_and_shows_no_receipt_until_reading(
    stores,
):
    room = await a_room(stores)
    for _ in range(3):
        await append(stores, room, ANN)
    await stores.rooms.add_member(room, "bob")
    counts = (await stores.reads.counts("bob", [room]))[room]
    assert (counts.last_seq, counts.read_seq, counts.unread) == (3, 3, 0)
    assert await stores.reads.positions(room, ["bob"]) == {}  # joining is not reading
    await append(stores, room, ANN)
    counts = (await stores.reads.counts("bob", [room]))[room]
    assert (counts.read_seq, counts.unread) == (3, 1)
    outcome, _, _ = await stores.reads.mark(room, "bob", 4)
    assert outcome == "moved"
    assert await stores.reads.positions(room, ["bob"]) == {"bob": 4}
    # Leaving drops the position: joining again starts from the newest message again.
    await stores.rooms.remove_member(room, "bob")
    await append(stores, room, ANN)
    await stores.rooms.add_member(room, "bob")
    counts = (await stores.reads.counts("bob", [room]))[room]
    assert (counts.read_seq, counts.unread) == (5, 0)

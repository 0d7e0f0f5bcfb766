"""One suite, two implementations: the contract of ``PeopleStore`` (chat/ports.py), with the
name index that ``AccountStore`` keeps on create and rename and the DM gates that
``History.append`` and ``MessageChanges.change`` read, over the fakes and over the Redis
Cluster adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes.accounts import MemoryAccounts
from fakes.changes import MemoryChanges
from fakes.failures import fail_once
from fakes.history import MemoryHistory
from fakes.people import MemoryPeople
from fakes.rooms import MemoryRooms
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.changes import ClusterChanges
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.people import ClusterPeople
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.errors import ChatError
from chat.models import Message, UserRecord, UserRef
from chat.ports import ChangeRequest


@dataclass
class Stores:
    people: Any
    accounts: Any
    history: Any
    rooms: Any
    changes: Any
    cluster: Cluster | None = None

    async def user(self, user_id: str, name: str) -> UserRecord:
        record = UserRecord(user_id, f"{user_id}@example.com", name)
        assert await self.accounts.create(record, f"{user_id}@example.com", "hash")
        return record

    async def dm(self, sender: str, room: str, cid: str = "t") -> Message:
        ref = UserRef(sender, sender)
        message, _ = await self.history.append("x", room, ref, "hi", cid, cid)
        return message

    async def change(self, kind: str, sender: str, target: Message, **kw: Any) -> Message | None:
        req = ChangeRequest(
            kind, target.room, target.id, target.seq, UserRef(sender, sender), "r",
            f"{kind}-{sender}-{target.seq}-{kw}", **kw,
        )  # fmt: skip
        entry, _ = await self.changes.change(req)
        return entry


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        accounts, history = MemoryAccounts(), MemoryHistory()
        rooms = MemoryRooms(accounts)
        people = MemoryPeople(accounts, history, rooms)
        yield Stores(people, accounts, history, rooms, MemoryChanges(history))
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    roster = ClusterRoster(cluster)
    try:
        yield Stores(
            ClusterPeople(cluster), ClusterAccounts(cluster, roster), ClusterHistory(cluster),
            ClusterRooms(cluster, roster, rooms_per_user=10, created_per_user=10),
            ClusterChanges(cluster), cluster,
        )  # fmt: skip
    finally:
        await cluster.stop()


async def test_blocks_are_bounded_and_listed(stores):
    p = stores.people
    assert await p.block("ann", "bob", 2) and await p.block("ann", "cid", 2)
    assert await p.block("ann", "bob", 2)  # already blocked: still true at the bound
    assert not await p.block("ann", "dan", 2)
    assert await p.blocks("ann") == {"bob", "cid"} and await p.blocks("bob") == set()
    await p.unblock("ann", "bob")
    await p.unblock("ann", "nobody")
    assert await p.blocks("ann") == {"cid"}


async def test_a_block_closes_the_dm_both_ways_until_every_block_is_lifted(stores):
    p, room = stores.people, "dm:ann:bob"
    await stores.dm("ann", room, "before")
    await p.block("bob", "ann", 10)
    for sender, token in (("ann", "t1"), ("bob", "t2"), ("ann", "before")):  # a retry too
        with pytest.raises(ChatError) as refused:
            await stores.dm(sender, room, token)
        assert refused.value.code == "forbidden"
    assert (await stores.dm("ann", "dm:ann:cid")).seq == 1  # another pair: open
    await p.block("ann", "bob", 10)
    await p.unblock("bob", "ann")
    with pytest.raises(ChatError):  # ann's own block still holds
        await stores.dm("bob", room, "t3")
    assert not await p.block("ann", "dan", 1)  # refused by the bound: no gate either
    assert (await stores.dm("ann", "dm:ann:dan")).seq == 1
    await p.unblock("ann", "bob")
    assert (await stores.dm("bob", room, "t4")).seq == 2  # the refused ones took no seq


async def test_a_block_closes_a_dm_to_edits_and_reactions_both_ways_but_not_to_deletes(stores):
    room = "dm:ann:bob"
    ann_says, bob_says = await stores.dm("ann", room, "a"), await stores.dm("bob", room, "b")
    await stores.change("react", "ann", bob_says, emoji="👍")
    await stores.people.block("bob", "ann", 10)
    attempts = [
        ("edit", "ann", ann_says, {"text": "again"}), ("edit", "bob", bob_says, {"text": "hm"}),
        ("react", "bob", ann_says, {"emoji": "👍"}),
        ("react", "ann", bob_says, {"emoji": "👍", "on": False}),  # taking one back too
    ]  # fmt: skip
    for kind, sender, target, kw in attempts:
        with pytest.raises(ChatError) as refused:
            await stores.change(kind, sender, target, **kw)
        assert (refused.value.code, refused.value.message) == ("forbidden", "not allowed")
    page, _ = await stores.history.page(room, before=None, after=0, limit=10, viewer="ann")
    assert [m.seq for m in page] == [1, 2, 3]  # nothing stored by the refusals
    deleted = await stores.change("delete", "ann", ann_says)  # one's own: still possible
    assert deleted is not None and deleted.seq == 4
    await stores.people.unblock("bob", "ann")
    edited = await stores.change("edit", "bob", bob_says, text="hm")
    assert edited is not None and edited.text == "hm"


async def test_a_deleted_account_leaves_its_dms_open_to_changes_by_the_other(stores):
    ann = await stores.user("ann", "Ann")
    await stores.user("bob", "Bob")
    await stores.rooms.ensure_dm("dm:ann:bob")
    bob_says = await stores.dm("bob", "dm:ann:bob")
    await stores.people.forget(ann, "ann@example.com")
    await stores.people.close_dms("ann")
    with pytest.raises(ChatError) as refused:  # closed to new messages
        await stores.dm("bob", "dm:ann:bob", "t2")
    assert refused.value.code == "no_user"
    edited = await stores.change("edit", "bob", bob_says, text="edited")
    assert edited is not None and edited.text == "edited"


async def test_a_dm_is_listed_for_neither_user_while_either_blocks_the_other(stores):
    for user_id in ("ann", "bob", "cid"):
        await stores.user(user_id, user_id.title())
    rooms = stores.rooms
    await stores.people.block("bob", "ann", 10)
    await stores.people.block("ann", "cid", 10)
    for room in ("dm:ann:bob", "dm:ann:cid"):  # blocked by the peer, then by the sender
        with pytest.raises(ChatError) as refused:
            await rooms.ensure_dm(room)
        assert refused.value.code == "forbidden"
    for user_id in ("ann", "bob", "cid"):
        assert not {"dm:ann:bob", "dm:ann:cid"} & await rooms.user_rooms(user_id)
    await rooms.ensure_dm("dm:bob:cid")
    await stores.people.block("cid", "bob", 10)
    with pytest.raises(ChatError):
        await rooms.ensure_dm("dm:bob:cid")
    assert "dm:bob:cid" in await rooms.user_rooms("bob")  # listed before: stays listed


async def test_a_deleted_account_closes_its_dms_and_cannot_be_listed_again(stores):
    ann = await stores.user("ann", "Ann")
    await stores.user("bob", "Bob")
    await stores.user("cid", "Cid")
    await stores.rooms.ensure_dm("dm:ann:bob")
    await stores.dm("bob", "dm:ann:bob")
    await stores.people.forget(ann, "ann@example.com")
    await stores.people.close_dms("ann")
    with pytest.raises(ChatError) as refused:
        await stores.dm("bob", "dm:ann:bob", "t2")
    assert refused.value.code == "no_user"
    with pytest.raises(ChatError) as refused:
        await stores.rooms.ensure_dm("dm:ann:cid")
    assert refused.value.code == "no_user"
    assert (await stores.dm("bob", "dm:bob:cid")).seq == 1
    await stores.rooms.ensure_dm("dm:bob:cid")
    assert "dm:bob:cid" in await stores.rooms.user_rooms("cid")


async def test_the_name_index_pages_a_prefix_by_lowercased_name_then_id(stores):
    for user_id, name in (("u2", "Alma"), ("u1", "alma"), ("u3", "Alberto"), ("u4", "Bo")):
        await stores.user(user_id, name)
    p = stores.people
    assert await p.search("al", 0, 10) == [("u3", "alberto"), ("u1", "alma"), ("u2", "alma")]
    assert await p.search("AL", 1, 1) == [("u1", "alma")]
    assert await p.search("alm", 2, 5) == []
    assert await p.search("z", 0, 5) == []
    await stores.accounts.set_name("u4", "Albrecht")
    assert [e[0] for e in await p.search("al", 0, 10)] == ["u3", "u4", "u1", "u2"]
    assert await p.search("bo", 0, 5) == []
    await stores.accounts.set_name("u4", "ALBRECHT")  # only the case: one entry still
    assert await p.search("albr", 0, 5) == [("u4", "albrecht")]
    await p.unindex("u3", "alberto")
    assert [e[0] for e in await p.search("al", 0, 10)] == ["u4", "u1", "u2"]


async def test_names_beyond_ascii_are_found_by_their_prefix(stores):
    await stores.user("u1", "Émile")
    await stores.user("u2", "Ёлка")
    assert await stores.people.search("é", 0, 5) == [("u1", "émile")]
    assert await stores.people.search("ЁЛ", 0, 5) == [("u2", "ёлка")]


async def test_reindex_adds_users_under_their_current_names(stores):
    p = stores.people
    await p.reindex([UserRecord("old", "", "Olga")])
    assert await p.search("olg", 0, 5) == [("old", "olga")]


async def test_forget_frees_the_email_and_marks_the_user_deleted(stores):
    ann = await stores.user("ann", "Ann")
    await stores.user("bob", "Bob")
    await stores.people.block("ann", "bob", 10)
    assert await stores.people.deleted(["ann", "bob"]) == set()
    await stores.people.forget(ann, "ann@example.com")
    assert await stores.people.deleted(["ann", "bob", "ann"]) == {"ann"}
    assert await stores.accounts.user("ann") is None
    assert await stores.accounts.account("ann@example.com") is None
    assert await stores.people.blocks("ann") == set()
    assert await stores.people.search("ann", 0, 5) == []
    # The email registered again, then the deletion run again: the new account stays.
    again = UserRecord("ann2", "ann@example.com", "Ann")
    assert await stores.accounts.create(again, "ann@example.com", "hash")
    await stores.people.forget(ann, "ann@example.com")
    assert (await stores.accounts.account("ann@example.com")).user_id == "ann2"
    assert await stores.people.search("ann", 0, 5) == [("ann2", "ann")]


async def test_the_operator_scan_finds_every_user(stores):
    if stores.cluster is None:
        pytest.skip("a scan of the cluster's masters (ClusterPeople only)")
    for i in range(30):
        await stores.user(f"s{i}", f"S{i}")
    found = [u async for u in stores.people.user_ids()]
    assert set(found) >= {f"s{i}" for i in range(30)}


async def test_an_unblock_that_failed_half_way_stays_listed_to_be_lifted_again(stores):
    if not isinstance(stores.people, ClusterPeople):
        pytest.skip("the gate is a write of its own (ClusterPeople only)")
    p = stores.people
    for user_id, name in (("ann", "Ann"), ("bob", "Bob")):
        await stores.user(user_id, name)
    assert await p.block("ann", "bob", 10)
    failed = fail_once(p, "_gate")
    with pytest.raises(ChatError):
        await p.unblock("ann", "bob")
    assert failed and "bob" in await p.blocks("ann")  # the user sees it, and lifts it again
    await p.unblock("ann", "bob")
    assert "bob" not in await p.blocks("ann")
    assert (await stores.dm("bob", "dm:ann:bob")).seq == 1  # the DM goes through


async def test_reindex_restores_the_gates_of_blocks_and_deletions_made_before_them(stores):
    if stores.cluster is None:
        pytest.skip("data in the layout before DM gates (ClusterPeople only)")
    send = stores.cluster.send
    for user_id in ("ann", "bob", "cid"):
        await stores.user(user_id, user_id.title())
    await send(keys.user_blocks_key("ann"), "SADD", keys.user_blocks_key("ann"), "bob")
    await send(keys.user_rooms_key("gone"), "SADD", keys.user_rooms_key("gone"), "dm:cid:gone")
    await send(keys.deleted_users_key(), "SADD", keys.deleted_users_key(), "gone")
    assert (await stores.dm("bob", "dm:ann:bob")).seq == 1  # no gate yet
    await stores.people.restore_gates(["ann", "bob", "cid"])
    await stores.people.close_deleted_dms()
    for room, code in (("dm:ann:bob", "forbidden"), ("dm:cid:gone", "no_user")):
        with pytest.raises(ChatError) as refused:
            await stores.dm("cid" if "cid" in room else "bob", room, "again")
        assert refused.value.code == code

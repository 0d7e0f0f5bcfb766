"""Blocking, user search and account deletion over the fakes (chat/core/people.py,
typing_filter.py, deletion.py); across nodes on real servers: e2e/test_people.py."""

from __future__ import annotations

import asyncio

import pytest
from fakes.node import MemoryNode

from chat import channels
from chat.core.people import BlocksChanged
from chat.errors import ChatError


def code(ack):
    return None if ack["ok"] else ack["error"]["code"]


async def test_a_dm_between_users_where_either_blocked_the_other_is_forbidden(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    assert (await ann.call("block", {"user": "bob"})) == {"ok": True}
    logs = {room: list(log) for room, log in world.history.logs.items()}
    for sender, to in ((ann, "bob"), (bob, "ann")):
        refused = await sender.call("dm", {"to": to, "text": "hi"})
        # The message of any forbidden: the block is not told.
        assert refused["error"] == {"code": "forbidden", "message": "not allowed"}
        refused = await sender.call("send", {"room": "dm:ann:bob", "text": "hi"})
        assert code(refused) == "forbidden"
    assert {room: list(log) for room, log in world.history.logs.items()} == logs
    assert bob.events("message") == [] and ann.events("message") == []
    assert (await ann.call("unblock", {"user": "bob"})) == {"ok": True}
    assert (await bob.call("dm", {"to": "ann", "text": "hello again"}))["ok"]
    assert ann.events("message")[-1]["text"] == "hello again"


async def test_a_blocked_first_dm_is_listed_for_nobody(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    assert (await bob.call("block", {"user": "ann"}))["ok"]
    assert code(await ann.call("dm", {"to": "bob", "text": "hi"})) == "forbidden"
    assert "dm:ann:bob" not in world.rooms.lists.get("bob", set())
    assert "dm:ann:bob" not in world.rooms.lists.get("ann", set())
    assert "dm:ann:bob" not in world.history.logs


async def test_a_first_dm_to_an_account_deleted_before_it_stores_nothing(node, world):
    ann = await node.connect("ann")
    await node.connect("bob")  # the node has seen bob: its users_exist cache knows him
    await node.deletion.delete(world.accounts.records["bob"])
    assert code(await ann.call("dm", {"to": "bob", "text": "hi"})) == "no_user"
    assert "dm:ann:bob" not in world.history.logs
    assert "dm:ann:bob" not in world.rooms.lists.get("ann", set())


async def test_blocks_are_listed_bounded_and_checked(world):
    node = MemoryNode(world, blocks_max=2)
    ann = await node.connect("ann")
    assert code(await ann.call("block", {"user": "ann"})) == "invalid_request"
    assert code(await ann.call("block", {"user": "nobody"})) == "no_user"
    assert (await ann.call("block", {"user": "dan"}))["ok"]
    assert (await ann.call("block", {"user": "bob"}))["ok"]
    assert (await ann.call("block", {"user": "bob"}))["ok"]  # again: nothing new
    assert code(await ann.call("block", {"user": "cid"})) == "too_many"
    listed = await ann.call("blocks", {})
    assert listed == {
        "ok": True,
        "users": [{"id": "bob", "name": "Bob"}, {"id": "dan", "name": "Dan"}],
    }
    assert (await ann.call("unblock", {"user": "nobody"}))["ok"]  # nothing to undo
    assert (await ann.call("unblock", {"user": "dan"}))["ok"]
    assert (await ann.call("block", {"user": "cid"}))["ok"]
    assert world.people.blocked["ann"] == {"bob", "cid"}


async def test_the_blocker_receives_no_typing_from_the_blocked_user(node, other, world):
    ann, cid = await node.connect("ann"), await node.connect("cid")
    bob = await other.connect("bob")
    # A first notice fills node n1's cache (ann blocks nobody yet).
    await bob.call("typing", {"room": "lobby"})
    await node.settle()
    assert len(ann.events("typing")) == 1 and len(cid.events("typing")) == 1
    assert (await ann.call("block", {"user": "bob"}))["ok"]
    world.clock.advance(2.1)
    assert (await bob.call("typing", {"room": "lobby"}))["sent"]
    await node.settle()
    assert len(ann.events("typing")) == 1  # the cache was dropped by the block's notice
    assert len(cid.events("typing")) == 2
    world.clock.advance(2.1)
    await bob.call("typing", {"room": "dm:ann:bob"})
    await node.settle()
    assert len(ann.events("typing")) == 1
    # Typing by the blocker still reaches the blocked user (a block is one user's view).
    await ann.call("typing", {"room": "lobby"})
    await other.settle()
    assert bob.events("typing")[-1]["user"]["id"] == "ann"
    await ann.call("unblock", {"user": "bob"})
    world.clock.advance(2.1)
    await bob.call("typing", {"room": "lobby"})
    await node.settle()
    assert ann.events("typing")[-1]["user"]["id"] == "bob"


async def test_a_change_of_one_users_blocks_voids_only_that_users_read(node, other, world):
    """A global count of changes let anyone's no-op unblock, landing during a read, keep every
    member's blocks out of the cache: each notice then read them all again."""
    ann, _ = await node.connect("ann"), await node.connect("cid")
    bob = await other.connect("bob")
    reads: list[str] = []
    real = world.people.blocks

    async def blocks(user_id):
        reads.append(user_id)
        if user_id == "cid" and reads.count("cid") == 1:  # cid's blocks change meanwhile
            await node.typing._changed(channels.user_channel("cid"), BlocksChanged("zed", False))
        return await real(user_id)

    world.people.blocks = blocks
    await bob.call("typing", {"room": "lobby"})
    await node.settle()
    assert len(ann.events("typing")) == 1 and {"ann", "cid"} <= set(reads)
    reads.clear()
    world.clock.advance(2.1)
    await bob.call("typing", {"room": "lobby"})
    await node.settle()
    assert "cid" in reads and "ann" not in reads  # ann's read was kept


async def test_a_socket_that_comes_back_reads_the_blocks_again(node, other, world):
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await bob.call("typing", {"room": "lobby"})
    await node.settle()
    assert len(ann.events("typing")) == 1
    await ann.close()
    # Blocked while ann had no socket on n1: n1 followed nobody's channel to hear of it.
    world.people.blocked["ann"] = {"bob"}
    ann = await node.connect("ann")
    world.clock.advance(2.1)
    await bob.call("typing", {"room": "lobby"})
    await node.settle()
    assert ann.events("typing") == []


async def test_search_pages_by_prefix_ignoring_case_without_emails(node, world):
    for user_id, name in (("al1", "Alma"), ("al2", "alberto"), ("al3", "ALEX"), ("zo", "Zoe")):
        world.accounts.add(user_id, name)
    ann = await node.connect("ann")
    first = await ann.call("users", {"prefix": "  aL", "limit": 2})
    assert first == {
        "ok": True,
        "users": [{"id": "al2", "name": "alberto"}, {"id": "al3", "name": "ALEX"}],
        "has_more": True,
    }
    rest = await ann.call("users", {"prefix": "al", "offset": 2, "limit": 2})
    assert rest["users"] == [{"id": "al1", "name": "Alma"}] and rest["has_more"] is False
    assert (await ann.call("users", {"prefix": "Q"}))["users"] == []
    assert code(await ann.call("users", {"prefix": "   "})) == "invalid_request"
    await node.profile.rename("al1", "Zelda")
    assert [u["id"] for u in (await ann.call("users", {"prefix": "al"}))["users"]] == ["al2", "al3"]
    assert (await ann.call("users", {"prefix": "zel"}))["users"] == [{"id": "al1", "name": "Zelda"}]


async def test_search_drops_stale_and_deleted_entries(node, world):
    world.accounts.add("al1", "Alma")
    world.accounts.names.add("alfred\0al1")  # left behind by racing renames
    world.accounts.names.add("alien\0gone")  # a user without a record
    ann = await node.connect("ann")
    assert (await ann.call("users", {"prefix": "al"}))["users"] == [{"id": "al1", "name": "Alma"}]
    assert world.accounts.names & {"alfred\0al1", "alien\0gone"} == set()


async def test_search_spends_its_own_row(world):
    node = MemoryNode(world, limits={"search": (0.001, 1)})
    ann = await node.connect("ann")
    assert (await ann.call("users", {"prefix": "b"}))["ok"]
    refused = await ann.call("users", {"prefix": "b"})
    assert code(refused) == "rate_limited" and refused["error"]["retry_after"] > 0
    assert (await ann.call("blocks", {}))["ok"]  # another row


async def test_deletion_ends_sessions_frees_the_email_and_renames_history(node, other, world):
    await node.rooms.create(world.accounts.records["cid"], "team", "Team", False)
    await world.rooms.add_member("team", "ann")
    ann, cid = await node.connect("ann"), await other.connect("cid")
    sent = await ann.call("send", {"room": "team", "text": "bye all"})
    assert sent["ok"]
    assert (await ann.call("dm", {"to": "cid", "text": "just you"}))["ok"]
    world.people.blocked["ann"] = {"dan"}
    world.people.blocked["dan"] = {"ann", "bob"}
    user = world.accounts.records["ann"]

    await node.deletion.delete(user)
    await node.settle()
    await other.settle()

    assert ann.events("session_end")[-1]["code"] == "token_revoked"
    assert "ann" not in world.accounts.records and "ann" in world.people.deleted_ids
    assert "ann" not in world.people.blocked
    dan = await node.connect("dan")
    assert (await dan.call("blocks", {}))["users"] == [{"id": "bob", "name": "Bob"}]
    assert world.people.blocked["dan"] == {"bob"}  # no longer counted against the bound
    assert "ann" not in world.rooms.members["team"]
    assert cid.events("left")[-1] == {"room": "team", "user": {"id": "ann", "name": "Deleted user"}}
    page = await cid.call("history", {"room": "team"})
    assert page["messages"][-1]["from"] == {"id": "ann", "name": "Deleted user"}
    assert (await cid.call("users", {"prefix": "ann"}))["users"] == []
    assert code(await cid.call("dm", {"to": "ann", "text": "hello?"})) == "no_user"
    # Their DM stays the other user's to read, under the neutral name.
    assert code(await cid.call("send", {"room": "ann:cid", "text": "hello?"})) == "no_room"
    assert code(await cid.call("send", {"room": "dm:ann:cid", "text": "hello?"})) == "no_user"
    dm = await cid.call("history", {"room": "dm:ann:cid"})
    assert [m["from"]["name"] for m in dm["messages"]] == ["Deleted user"]
    pair = await cid.call("members", {"room": "dm:ann:cid"})
    assert {m["id"]: m["name"] for m in pair["members"]}["ann"] == "Deleted user"
    listed = {r["id"]: r["name"] for r in await node.rooms.visible(world.accounts.records["cid"])}
    assert listed["dm:ann:cid"] == "Deleted user"
    with pytest.raises(ChatError) as err:
        await node.accounts.find("ann")
    assert err.value.code == "no_user"


async def test_own_deletion_needs_the_password_and_frees_the_email(node, world):
    user = await node.accounts.register("eve@example.com", "A-long-pass-1", "Eve", client="ip")
    with pytest.raises(ChatError) as err:
        await node.deletion.delete_own(user.id, "wrong-password", "ip")
    assert err.value.code == "invalid_credentials" and err.value.status == 401
    assert user.id in world.accounts.records and not world.people.deleted_ids
    await node.deletion.delete_own(user.id, "A-long-pass-1", "ip")
    assert user.id not in world.accounts.records and user.id in world.people.deleted_ids
    again = await node.accounts.register("EVE@example.com", "Another-pass-2", "Eve", client="ip")
    assert again.id != user.id
    with pytest.raises(ChatError) as err:
        await node.accounts.login("eve@example.com", "A-long-pass-1", "ip")
    assert err.value.code == "invalid_credentials"
    # A deletion run again (an operator finishing it) leaves the new account alone.
    await node.deletion.delete(user)
    assert (await node.accounts.login("eve@example.com", "Another-pass-2", "ip")).id == again.id


async def test_typing_is_dropped_not_shown_unfiltered_when_blocks_cannot_be_read(
    node, other, world
):
    ann, bob = await node.connect("ann"), await other.connect("bob")

    async def failing(user_id):
        raise ChatError("unavailable", "the cluster is failing over", 503)

    world.people.blocks = failing
    assert (await bob.call("typing", {"room": "lobby"}))["sent"]
    await node.settle()
    assert ann.events("typing") == []


async def test_a_join_while_the_account_is_being_deleted_does_not_outlive_it(node, world):
    """A socket still open when the deletion begins joins a room: the deletion's read of the
    user's rooms comes after, so it leaves that room too."""
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await node.rooms.create(ann.conn.user, "club", None, False)
    began, go, forget = asyncio.Event(), asyncio.Event(), world.people.forget

    async def held_forget(*args):
        began.set()
        await go.wait()
        return await forget(*args)

    world.people.forget = held_forget
    deleting = asyncio.ensure_future(node.deletion.delete(world.accounts.records["bob"]))
    await began.wait()
    assert (await bob.call("join", {"room": "club"}))["ok"]
    go.set()
    await deleting
    assert "bob" not in world.rooms.members["club"]


async def test_reads_of_blocks_in_flight_each_see_the_changes_made_during_them(node, world):
    """Each read in flight keeps the users changed meanwhile; one ending first must not take
    another's record away (they were told apart by value, so by chance)."""
    await node.connect("ann")
    await node.connect("cid")
    gates = {"ann": asyncio.Event(), "cid": asyncio.Event()}
    out = {"ann": asyncio.Event(), "cid": asyncio.Event()}
    real = world.people.blocks

    async def blocks(user_id):
        out[user_id].set()
        await gates[user_id].wait()
        return await real(user_id)

    world.people.blocks = blocks
    first = asyncio.ensure_future(node.typing._read(["cid"]))
    second = asyncio.ensure_future(node.typing._read(["ann"]))
    for read in out.values():  # both reads are out
        await read.wait()
    gates["ann"].set()
    await second  # the later read ends first
    await node.typing._changed(channels.user_channel("cid"), BlocksChanged("zed", True))
    gates["cid"].set()
    await first
    assert "ann" in node.typing._cache and "cid" not in node.typing._cache
    assert not node.typing._reading

"""One suite, two implementations: the contract of ``MessageChanges`` and what ``History`` reads
show after changes (chat/ports.py), over the in-memory fakes and over the Redis Cluster
adapters, so that the fakes the unit tier relies on cannot drift from the Lua scripts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fakes import MemoryChanges, MemoryHistory
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.changes import ClusterChanges
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.core.payloads import SEQ_MAX
from chat.errors import ChatError
from chat.models import Message, UserRef
from chat.ports import ChangeRequest

ANN, BOB, CID = UserRef("ann", "Ann"), UserRef("bob", "Bob"), UserRef("cid", "Cid")


@dataclass
class Stores:
    history: Any
    changes: Any
    cluster: Cluster | None = None


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        history = MemoryHistory()
        yield Stores(history, MemoryChanges(history))
        return
    fleet = request.getfixturevalue("redis_clean")
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in fleet.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(fleet))
    await cluster.start(10)
    try:
        yield Stores(ClusterHistory(cluster), ClusterChanges(cluster), cluster)
    finally:
        await cluster.stop()


def room() -> str:
    return "r" + secrets.token_hex(4)


async def post(stores: Stores, room_id: str, text: str, sender: UserRef = ANN) -> Message:
    message, _ = await stores.history.append(
        secrets.token_hex(6), room_id, sender, text, None, secrets.token_hex(6)
    )
    return message


async def change(
    stores: Stores, kind: str, target: Message, sender: UserRef = ANN, **kw: Any
) -> Message | None:
    req = ChangeRequest(
        kind, target.room, kw.pop("target_id", target.id), kw.pop("target_seq", target.seq),
        sender, secrets.token_hex(4), kw.pop("token", secrets.token_hex(6)), **kw,
    )  # fmt: skip
    entry, _ = await stores.changes.change(req)
    return entry


async def refused(stores: Stores, code: str, *args: Any, **kw: Any) -> None:
    with pytest.raises(ChatError) as err:
        await change(stores, *args, **kw)
    assert err.value.code == code


async def everything(stores: Stores, room_id: str, viewer: str | None = None) -> list[Message]:
    page, _ = await stores.history.page(room_id, before=None, after=0, limit=100, viewer=viewer)
    return page


async def test_ids_carry_the_seq(stores):
    r = room()
    first, second = await post(stores, r, "a"), await post(stores, r, "b")
    assert first.id.startswith("1.") and second.id.startswith("2.") and first.id != second.id


async def test_an_edit_is_an_entry_and_reads_show_the_current_text(stores):
    r = room()
    message = await post(stores, r, "draft")
    edit = await change(stores, "edit", message, text="final", cid="c1")
    assert edit is not None and (edit.kind, edit.seq, edit.text, edit.cid) == (
        "edit",
        2,
        "final",
        "c1",
    )
    assert (edit.target, edit.target_seq, edit.sender) == (message.id, 1, ANN)
    assert edit.id.startswith("2.") and edit.ts >= message.ts
    assert await stores.history.last_seq(r) == 2
    shown, entry = await everything(stores, r)
    assert (shown.text, shown.edited_ts, shown.changed_seq) == ("final", edit.ts, 2)
    assert entry == edit
    assert [m.seq for m in await stores.history.between(r, 0, 2, 10)] == [1, 2]


async def test_a_delete_leaves_a_tombstone_and_hides_every_text(stores):
    r = room()
    message = await post(stores, r, "oops")
    await change(stores, "edit", message, text="oops again")
    await change(stores, "react", message, BOB, emoji="👍", on=True)
    tombstone = await change(stores, "delete", message)
    assert tombstone is not None and tombstone.text is None and tombstone.kind == "delete"
    shown, edit, react, delete = await everything(stores, r, viewer="bob")
    assert shown.deleted and shown.text is None and shown.reactions is None
    assert shown.my_reactions is None and shown.changed_seq == 4
    assert edit.kind == "edit" and edit.text is None
    assert (react.emoji, react.on) == ("👍", True) and delete == tombstone
    newest, _ = await stores.history.page(r, before=None, after=None, limit=10)
    assert all("oops" not in (m.text or "") for m in newest)


async def test_reactions_count_and_show_the_viewers_own(stores):
    r = room()
    message = await post(stores, r, "hi")
    for who, emoji in ((ANN, "👍"), (BOB, "👍"), (BOB, "🎉"), (CID, "👩‍💻")):
        entry = await change(stores, "react", message, who, emoji=emoji, on=True)
        assert entry is not None and (entry.emoji, entry.on, entry.text) == (emoji, True, None)
    assert await change(stores, "react", message, BOB, emoji="👍", on=True) is None
    off = await change(stores, "react", message, CID, emoji="👩‍💻", on=False)
    assert off is not None and off.on is False
    assert await change(stores, "react", message, CID, emoji="👩‍💻", on=False) is None
    assert await stores.history.last_seq(r) == 6
    as_bob = (await everything(stores, r, viewer="bob"))[0]
    assert as_bob.reactions == {"👍": 2, "🎉": 1} and sorted(as_bob.my_reactions) == ["🎉", "👍"]
    as_cid = (await everything(stores, r, viewer="cid"))[0]
    assert as_cid.reactions == as_bob.reactions and as_cid.my_reactions is None
    anonymous = (await stores.history.between(r, 0, 1, 1))[0]
    assert anonymous.reactions == as_bob.reactions and anonymous.my_reactions is None


async def test_refusals_change_nothing(stores):
    r = room()
    message = await post(stores, r, "mine")
    edit = await change(stores, "edit", message, text="still mine")
    before = await everything(stores, r, viewer="ann")
    await refused(stores, "forbidden", "edit", message, BOB, text="yours")
    await refused(stores, "forbidden", "delete", message, BOB)
    await refused(stores, "no_message", "edit", message, target_id="1.forged", text="x")
    await refused(stores, "no_message", "react", message, target_seq=9, emoji="👍", on=True)
    assert edit is not None
    await refused(stores, "no_message", "edit", edit, text="an edit is no message")
    await refused(stores, "no_message", "edit", message, target_id="1", target_seq=1, text="x")
    assert await everything(stores, r, viewer="ann") == before
    assert await stores.history.last_seq(r) == 2


async def test_deleted_messages_refuse_changes(stores):
    r = room()
    message = await post(stores, r, "gone soon")
    await change(stores, "delete", message)
    before = await everything(stores, r)
    await refused(stores, "message_deleted", "edit", message, text="back")
    await refused(stores, "message_deleted", "delete", message)
    await refused(stores, "message_deleted", "react", message, BOB, emoji="👍", on=True)
    assert await everything(stores, r) == before


async def test_the_edit_window_is_checked_against_the_message_time(stores):
    r = room()
    message = await post(stores, r, "now")
    assert await change(stores, "edit", message, text="soon", edit_window_ms=60_000)
    if isinstance(stores.history, MemoryHistory):
        stores.history.clock.advance(0.01)
    else:  # the scripts read the master's clock, which a test cannot move: let 10 ms pass
        await asyncio.sleep(0.01)
    await refused(stores, "edit_window_closed", "edit", message, text="late", edit_window_ms=5)
    assert await change(stores, "edit", message, text="no limit", edit_window_ms=0)


async def test_reaction_bounds(stores):
    r = room()
    message = await post(stores, r, "popular")
    faces = [chr(0x1F600 + i) for i in range(22)]
    for face in faces[:10]:
        assert await change(stores, "react", message, ANN, emoji=face, on=True, max_per_user=10)
    await refused(stores, "too_many_reactions", "react", message, ANN, emoji=faces[10], on=True)
    for face in faces[10:20]:
        assert await change(stores, "react", message, BOB, emoji=face, on=True)
    await refused(stores, "too_many_reactions", "react", message, CID, emoji=faces[20], on=True)
    assert await change(stores, "react", message, CID, emoji=faces[3], on=True)
    shown = (await everything(stores, r))[0]
    assert shown.reactions is not None and len(shown.reactions) == 20
    assert shown.reactions[faces[3]] == 2


async def test_a_repeated_token_answers_the_first_entry(stores):
    r = room()
    message = await post(stores, r, "x")
    first = await change(stores, "edit", message, text="one", token="t", cid="t")
    req = ChangeRequest("edit", r, message.id, 1, ANN, "other", "t", cid="t", text="two")
    again, created = await stores.changes.change(req)
    assert (again, created) == (first, False)
    assert await stores.history.last_seq(r) == 2
    assert (await everything(stores, r))[0].text == "one"


async def test_pages_count_change_entries_like_messages(stores):
    r = room()
    message = await post(stores, r, "m1")
    for n in range(3):
        await change(stores, "edit", message, text=f"v{n}")
    await post(stores, r, "m2")
    page, has_more = await stores.history.page(r, before=None, after=None, limit=2, viewer="ann")
    assert [m.seq for m in page] == [4, 5] and has_more
    assert page[0].kind == "edit" and page[1].kind is None and page[1].text == "m2"
    older, has_more = await stores.history.page(r, before=4, after=None, limit=10)
    assert [m.seq for m in older] == [1, 2, 3] and not has_more and older[0].text == "v2"


async def test_cursors_at_the_ends_of_the_seq_range_read_a_page(stores):
    """``before: 0`` is an empty page, and the largest seq a payload may carry is a cursor
    Redis takes (each was an ``internal`` error from the cluster)."""
    r = room()
    await post(stores, r, "m1")
    await post(stores, r, "m2")
    assert await stores.history.page(r, before=0, after=None, limit=10) == ([], False)
    assert await stores.history.page(r, before=0, after=0, limit=10) == ([], False)
    top = SEQ_MAX
    newest, has_more = await stores.history.page(r, before=top, after=None, limit=10)
    assert [m.seq for m in newest] == [1, 2] and not has_more
    assert await stores.history.page(r, before=None, after=top, limit=10) == ([], False)
    assert await stores.history.between(r, 0, top, 10) != []


async def test_the_state_of_messages_trimmed_away_is_forgotten(redis_clean):
    """Redis only (the fake keeps everything): retention trims the stream, and the change
    script drops the state and reactors of what it trimmed, so they do not pile up."""
    seeds = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in redis_clean.cluster_nodes)]
    cluster = Cluster(seeds, node_id="test", access=access(redis_clean))
    await cluster.start(10)
    try:
        stores = Stores(ClusterHistory(cluster, max_len=100), ClusterChanges(cluster, max_len=100))
        r = room()
        reacted = []
        for n in range(300):
            message = await post(stores, r, f"m{n}")
            assert await change(stores, "react", message, BOB, emoji="👍", on=True)
            reacted.append(message.seq)
        kept, _ = await stores.history.page(r, before=None, after=0, limit=1)
        first = kept[0].seq
        assert first > 300  # MAXLEN ~ trimmed whole stream nodes
        state = keys.room_state_key(r)
        fields = {int(f) for f in await cluster.send(state, "HKEYS", state) if f != b"floor"}
        assert fields and min(fields) >= first - 128  # at most two rounds behind the trim
        for seq in reacted:
            rx = keys.room_reactors_key(r, seq)
            assert await cluster.send(rx, "EXISTS", rx) == (1 if seq in fields else 0), seq
        page, _ = await stores.history.page(r, before=None, after=None, limit=2, viewer="bob")
        newest = page[0]
        assert newest.seq == 599 and newest.reactions == {"👍": 1} and newest.my_reactions == ["👍"]
    finally:
        await cluster.stop()

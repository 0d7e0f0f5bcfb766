"""Changes recovered after an absence and through a crash: ``sync`` after a long absence brings
every entry (messages, edits, deletes, reactions) in order and never a deleted text, and a
chat node killed with ``kill -9`` while edits flow loses no acknowledged edit."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import socketio
from sioclient import Client, connected
from stack import Stack, register, start_stack
from test_changes import next_in, ok
from test_faults import all_messages
from test_rooms import make_room


async def test_sync_after_a_long_absence_brings_every_change_in_order_and_no_deleted_text(
    stack: Stack,
):
    ann, bob, cid = [await register(stack.url(i % 2)) for i in range(3)]
    room = await make_room(stack, ann)
    async with connected(stack.url(1), bob.token) as away:
        known = (await ok(away, "join", {"room": room}))["room"]["last_seq"]
    async with connected(stack.url(0), ann.token) as a, connected(stack.url(1), cid.token) as c:
        await ok(c, "join", {"room": room})
        sent = []
        for n in range(60):
            text = f"SECRET-{n}" if n % 5 == 0 else f"m{n}"
            sent.append((await ok(a, "send", {"room": room, "text": text}))["message"])
        expected: dict[int, dict] = {m["seq"]: {"text": m["text"]} for m in sent}
        kinds = []
        for n, message in enumerate(sent):
            target = {"room": room, "id": message["id"]}
            if n % 5 == 0:  # edited (still secret), reacted to, then deleted
                await ok(a, "edit", {**target, "text": f"SECRET edit {n}"})
                await ok(c, "react", {**target, "emoji": "👍", "on": True})
                await ok(a, "delete", target)
                expected[message["seq"]] = {"deleted": True}
                kinds += ["edit", "react", "delete"]
            elif n % 3 == 0:
                await ok(a, "edit", {**target, "text": f"edited {n}"})
                await ok(c, "react", {**target, "emoji": "🎉", "on": True})
                expected[message["seq"]] = {"text": f"edited {n}", "reactions": {"🎉": 1}}
                kinds += ["edit", "react"]
        last = sent[-1]["seq"] + len(kinds)

    async with connected(stack.url(0), bob.token) as back:  # the other node this time
        await back.next("session")
        synced = (await ok(back, "sync", {"rooms": {room: known}}))["rooms"][room]
        entries = synced["messages"]
        assert synced["has_more"] is True and len(entries) == 100
        while True:  # paging on, as the client is told to
            page = await ok(back, "history", {"room": room, "after": entries[-1]["seq"]})
            entries += page["messages"]
            if not page["has_more"]:
                break
        assert [m["seq"] for m in entries] == list(range(known + 1, last + 1))
        assert [m["kind"] for m in entries if "kind" in m] == kinds
        assert "SECRET" not in str(entries)
        newest_change = {e["target_seq"]: e["seq"] for e in entries if "kind" in e}
        for entry in entries:
            if "kind" not in entry:
                want = expected[entry["seq"]]
                assert {k: entry.get(k) for k in want} == want, entry
                assert ("edited_ts" in entry) == want.get("text", "").startswith("edited")
                # What a client needs to skip the changes this state already counts.
                assert entry.get("changed_seq") == newest_change.get(entry["seq"]), entry
        # And live from there on: a change made now arrives as an event.
        async with connected(stack.url(1), ann.token) as a:
            await ok(a, "react", {"room": room, "id": sent[1]["id"], "emoji": "🙂", "on": True})
        assert (await next_in(back, room))["seq"] == last + 1


class Editor:
    """Edits its own message until stopped; retries a retriable error with the same cid;
    records every acknowledged edit."""

    progress: asyncio.Condition

    def __init__(self, client: Client, room: str, target: dict, tag: str) -> None:
        self.client, self.room, self.target, self.tag = client, room, target, tag
        self.acked: list[dict] = []
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        for n in itertools.count():
            payload = {"room": self.room, "id": self.target["id"], "text": f"{self.tag}{n}"}
            payload["cid"] = f"{self.tag}{n}"
            while not self.stopped.is_set():
                try:
                    ack = await self.client.call("edit", payload, timeout=30)
                except (ConnectionError, socketio.exceptions.BadNamespaceError):
                    return  # its node died: unacknowledged, so nothing is promised
                if ack["ok"]:
                    self.acked.append(ack["message"])
                    async with self.progress:
                        self.progress.notify_all()
                    break
                assert ack["error"]["code"] == "unavailable", ack
                await asyncio.sleep(0.05)  # a client's retry delay
            if self.stopped.is_set():
                return


async def wait_for(predicate, timeout=20.0) -> None:
    async with asyncio.timeout(timeout), Editor.progress:
        await Editor.progress.wait_for(predicate)


@pytest.mark.slow
async def test_kill_9_of_a_node_while_edits_flow_loses_no_acknowledged_edit(
    redis_fleet, tmp_path, jwt_secret
):
    Editor.progress = asyncio.Condition()
    with start_stack(
        redis_fleet, tmp_path, jwt_secret, nodes=2, send_rate="1000", send_burst="1000"
    ) as stack:
        writer0, writer1, reader = [await register(stack.url(1)) for _ in range(3)]
        room = await make_room(stack, writer0, node=1)
        clients = {}
        for name, user, node in (("w0", writer0, 0), ("w1", writer1, 1), ("r", reader, 0)):
            clients[name] = await Client().connect(stack.url(node), user.token)
            assert (await clients[name].call("join", {"room": room}))["ok"]
        targets = [
            (await ok(clients[w], "send", {"room": room, "text": f"{w} original"}))["message"]
            for w in ("w0", "w1")
        ]
        editors = [
            Editor(clients[w], room, t, f"{w}-") for w, t in zip(("w0", "w1"), targets, strict=True)
        ]
        tasks = [asyncio.create_task(e.run()) for e in editors]
        await wait_for(lambda: len(editors[0].acked) >= 20)

        stack.nodes[0].kill()

        await clients["r"].next("__disconnect__")
        seen = [m for m in clients["r"].pending("message") if m["room"] == room]
        await wait_for(lambda: len(editors[1].acked) >= len(editors[0].acked) + 20)
        reader_again = await Client().connect(stack.url(1), reader.token)
        await reader_again.next("session")
        since = seen[-1]["seq"] if seen else 0
        synced = await reader_again.call("sync", {"rooms": {room: since}})
        for editor in editors:
            editor.stopped.set()
        await asyncio.gather(*tasks)

        stored = await all_messages(stack, reader, room)
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
        by_id = {m["id"]: m for m in stored}
        for editor in editors:
            for edit in editor.acked:  # every acknowledged edit is stored, as acknowledged
                assert by_id[edit["id"]] == edit
        # The survivor stopped between edits: its message shows its last acknowledged edit.
        assert by_id[targets[1]["id"]]["text"] == editors[1].acked[-1]["text"]
        assert by_id[targets[0]["id"]]["text"].startswith("w0-")
        recovered = seen + synced["rooms"][room]["messages"]
        assert [m["seq"] for m in recovered] == list(range(1, len(recovered) + 1))
        for client in (clients["w1"], reader_again):
            await client.close()

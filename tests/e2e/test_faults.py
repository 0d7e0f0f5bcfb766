"""Crashes: kill -9 of a chat node and of a cluster master, under load."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import socketio
from sioclient import Client
from stack import Stack, register, start_stack
from test_accounts import call
from test_rooms import make_room

from chat import keys
from devstack.cluster import RedisFleet

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def progress():
    Sender.progress = asyncio.Condition()


class Sender:
    """Sends to a room until stopped; retries a retriable error with the same cid; records
    every acknowledged message."""

    progress: asyncio.Condition

    def __init__(self, client: Client, room: str, tag: str) -> None:
        self.client, self.room, self.tag = client, room, tag
        self.acked: list[dict] = []
        self.ack_times: list[float] = []
        self.retriable = 0
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        for n in itertools.count():
            if self.stopped.is_set():
                return
            payload = {"room": self.room, "text": f"{self.tag}{n}", "cid": f"{self.tag}{n}"}
            while not self.stopped.is_set():
                try:
                    ack = await self.client.call("send", payload, timeout=30)
                except (ConnectionError, socketio.exceptions.BadNamespaceError):
                    return  # its node died: unacknowledged, so nothing is promised
                if ack["ok"]:
                    self.acked.append(ack["message"])
                    self.ack_times.append(asyncio.get_running_loop().time())
                    async with self.progress:
                        self.progress.notify_all()
                    break
                assert ack["error"]["code"] == "unavailable", ack
                self.retriable += 1
                await asyncio.sleep(0.05)  # a client's retry delay


async def all_messages(stack: Stack, user, room: str) -> list[dict]:
    messages, after = [], 0
    while True:
        status, page, _ = await call(
            "GET",
            stack.url(-1) + f"/api/rooms/{room}/messages?after={after}&limit=100",
            token=user.token,
        )
        assert status == 200, page
        messages += page["messages"]
        if not page["has_more"]:
            return messages
        after = messages[-1]["seq"]


async def wait_for(predicate, timeout=20.0) -> None:
    """Wait until the senders' progress satisfies ``predicate``."""
    async with asyncio.timeout(timeout), Sender.progress:
        await Sender.progress.wait_for(predicate)


async def test_kill_9_of_a_chat_node_loses_no_acked_message_and_clients_recover(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(
        redis_fleet, tmp_path, jwt_secret, nodes=2, send_rate="1000", send_burst="1000"
    ) as stack:
        writer0, writer1, reader = [await register(stack.url(1)) for _ in range(3)]
        room = await make_room(stack, writer0, node=1)
        clients = {}
        for name, user, node in (("w0", writer0, 0), ("w1", writer1, 1), ("r", reader, 0)):
            clients[name] = await Client().connect(stack.url(node), user.token)
            assert (await clients[name].call("join", {"room": room}))["ok"]
        senders = [Sender(clients["w0"], room, "a"), Sender(clients["w1"], room, "b")]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        await wait_for(lambda: len(senders[0].acked) >= 30)

        stack.nodes[0].kill()

        await clients["r"].next("__disconnect__")
        seen = [m for m in clients["r"].pending("message") if m["room"] == room]
        await wait_for(lambda: len(senders[1].acked) >= len(senders[0].acked) + 30)
        # The reader's client reconnects to the surviving node (the load balancer's job).
        reader_again = await Client().connect(stack.url(1), reader.token)
        await reader_again.next("session")
        synced = await reader_again.call("sync", {"rooms": {room: seen[-1]["seq"] if seen else 0}})
        for sender in senders:
            sender.stopped.set()
        await asyncio.gather(*tasks)
        recovered = seen + synced["rooms"][room]["messages"]
        assert synced["rooms"][room]["has_more"] is False or len(recovered) >= 100

        stored = await all_messages(stack, reader, room)
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
        stored_ids = {m["id"] for m in stored}
        for sender in senders:
            assert {m["id"] for m in sender.acked} <= stored_ids
        assert [m["seq"] for m in recovered] == list(range(1, len(recovered) + 1))
        for client in (clients["w1"], reader_again):
            await client.close()


async def test_kill_9_of_a_cluster_master_pauses_sends_then_they_resume(
    make_fleet, tmp_path, jwt_secret
):
    fleet: RedisFleet = make_fleet()
    with start_stack(
        fleet,
        tmp_path,
        jwt_secret,
        nodes=2,
        send_rate="1000",
        send_burst="1000",
        cluster_deadline="3",
        replica_wait_ms="500",
    ) as stack:
        owner, other = await register(stack.url(0)), await register(stack.url(1))
        room = await make_room(stack, owner)
        clients = [
            await Client().connect(stack.url(i), u.token) for i, u in enumerate((owner, other))
        ]
        for client in clients:
            assert (await client.call("join", {"room": room}))["ok"]
        senders = [Sender(c, room, t) for c, t in zip(clients, "xy", strict=True)]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        await wait_for(lambda: all(len(s.acked) >= 20 for s in senders))
        before = [len(s.acked) for s in senders]

        fleet.master_for_key(keys.room_seq_key(room)).kill()

        await wait_for(
            lambda: all(len(s.acked) >= b + 50 for s, b in zip(senders, before, strict=True)), 60
        )
        for sender in senders:
            sender.stopped.set()
        await asyncio.gather(*tasks)
        # Sends paused while the cluster failed over (node timeout 2 s), answered late or with
        # a retriable error, and resumed with no node restarted.
        longest = max(max(b - a for a, b in itertools.pairwise(s.ack_times)) for s in senders)
        assert longest > 1.0
        print(f"longest pause {longest:.1f} s, retriable errors {[s.retriable for s in senders]}")
        for node in stack.nodes:
            assert node.proc.poll() is None  # no node crashed
        stored = await all_messages(stack, owner, room)
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
        assert len({m["text"] for m in stored}) == len(stored)  # cid retries stored once
        stored_ids = {m["id"] for m in stored}
        for sender in senders:
            assert {m["id"] for m in sender.acked} <= stored_ids
        for client in clients:
            await client.close()

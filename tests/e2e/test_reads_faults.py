"""A chat node killed (kill -9) while read positions are moving (issue 16, item 8)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import socketio
from sioclient import Client
from stack import register, start_stack
from test_rooms import make_room

pytestmark = pytest.mark.slow


async def test_kill_9_of_a_node_while_reads_flow_keeps_positions_forward_and_counts_right(
    redis_fleet, tmp_path, jwt_secret
):
    limits = {"send_rate": "1000", "send_burst": "1000", "read_rate": "1000", "read_burst": "1000"}
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2, **limits) as stack:
        ann, bob = await register(stack.url(1)), await register(stack.url(1))
        room = await make_room(stack, bob, node=1)
        laptop = await Client().connect(stack.url(0), ann.token)
        phone = await Client().connect(stack.url(1), ann.token)
        writer = await Client().connect(stack.url(1), bob.token)
        for client in (laptop, writer):
            assert (await client.call("join", {"room": room}))["ok"]
        acked: list[int] = []
        enough, stop = asyncio.Event(), asyncio.Event()

        async def write() -> None:
            for n in itertools.count():
                if stop.is_set():
                    return
                assert (await writer.call("send", {"room": room, "text": f"m{n}"}))["ok"]

        async def read() -> None:
            """The laptop reads each message as it arrives, until its node dies."""
            while True:
                try:
                    message = await laptop.next("message", timeout=30)
                    ack = await laptop.call("read", {"room": room, "seq": message["seq"]})
                except (ConnectionError, TimeoutError, socketio.exceptions.BadNamespaceError):
                    return
                if not ack["ok"]:
                    return
                acked.append(ack["room"]["read_seq"])
                if len(acked) >= 20:
                    enough.set()

        tasks = [asyncio.create_task(write()), asyncio.create_task(read())]
        async with asyncio.timeout(30):
            await enough.wait()

        stack.nodes[0].kill()

        await laptop.next("__disconnect__")
        stop.set()
        await asyncio.gather(*tasks)
        # The phone, on the surviving node, saw the positions move forward only.
        seen = [event["seq"] for event in phone.pending("read")]
        assert seen == sorted(set(seen)) and seen[: len(acked)] == acked[: len(seen)]
        # Nothing the laptop was told is lost; the phone carries on from there.
        last = (await phone.call("read", {"room": room, "seq": 0}))["room"]
        assert (
            last["read_seq"] >= acked[-1] and last["unread"] == last["last_seq"] - last["read_seq"]
        )
        done = await phone.call("read", {"room": room, "seq": last["last_seq"]})
        assert (done["room"]["unread"], done["room"]["read_seq"]) == (0, last["last_seq"])
        again = await Client().connect(stack.url(1), ann.token)
        session = await again.next("session")
        [mine] = [r for r in session["rooms"] if r["id"] == room]
        assert (mine["read_seq"], mine["unread"]) == (last["last_seq"], 0)
        for client in (phone, writer, again):
            await client.close()

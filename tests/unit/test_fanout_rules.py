"""The inbound side of a node (chat/core/fanout.py, chat/core/follow.py) over the fakes: what
arrives on a channel reaches the local room named like it, in order and once; control actions
run in publication order per channel; a bad payload is dropped, never raised into the shard's
listener; a channel is opened with baselines read once it is live."""

from __future__ import annotations

import asyncio

from chat import channels
from chat.core.controls import Revoke
from chat.models import Envelope, encode_envelope


async def test_emit_envelopes_reach_the_local_room_skipping_one_user(node):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    lobby = channels.room_channel("lobby")
    payload = encode_envelope(Envelope("emit", "typing", {"room": "lobby"}, skip_user="ann"))
    await node.broker.publish(lobby, payload)
    assert bob.events("typing") == [{"room": "lobby"}] and ann.events("typing") == []


async def test_bad_payloads_are_dropped_and_counted(node):
    ann = await node.connect("ann")
    channel = channels.user_channel("ann")
    for payload in (b"", b"not json", b'{"kind":"ctl","event":"unknown"}', b'{"kind":"zzz"}'):
        await node.fanout(channel, payload)  # never raises
    assert node.fanout.received == 4
    assert [e for e, _ in ann.events()] == ["session"]


async def test_control_actions_run_one_after_the_other_in_publication_order(node):
    ran: list[int] = []
    release = asyncio.Event()

    started = asyncio.Event()

    async def slow(channel, notice):
        if notice.jti == "0":
            started.set()
            await release.wait()
        ran.append(int(notice.jti))

    node.fanout.on_control(Revoke, slow)
    for i in range(3):
        await node.fanout("user:ann", encode_envelope(Envelope("ctl", "revoke", {"jti": str(i)})))
    await started.wait()
    assert ran == []  # the second waits for the first
    release.set()
    await node.settle()
    assert ran == [0, 1, 2]


async def test_messages_of_a_room_are_delivered_in_seq_order_once(node):
    ann = await node.connect("ann")
    channel = channels.room_channel("lobby")
    messages = [
        await node.world.history.append(f"m{i}", "lobby", ann.conn.user.ref, str(i), None, str(i))
        for i in range(1, 4)
    ]

    def envelope(message):
        return encode_envelope(
            Envelope("emit", "message", message[0], room="lobby", seq=message[0].seq)
        )

    for message in (messages[0], messages[0], messages[1], messages[2], messages[1]):
        await node.fanout(channel, envelope(message))
    assert [m["seq"] for m in ann.events("message")] == [1, 2, 3]
    assert node.ordering.duplicates == 2


async def test_a_channel_opens_at_the_baseline_read_once_it_is_live(node, world):
    bob = await node.connect("bob")
    await node.rooms.create(bob.conn.user, "books", None, False)
    await bob.call("send", {"room": "books", "text": "old"})
    await bob.close()  # nobody follows ``room:books`` on this node now
    ann = await node.connect("ann")
    ack = await ann.call("join", {"room": "books"})
    assert ack["room"]["last_seq"] == 1  # the baseline: not delivered live
    sent = await bob.node.connect("bob")
    new = await sent.call("send", {"room": "books", "text": "new"})
    assert ann.events("message") == [new["message"]]

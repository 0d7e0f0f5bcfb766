"""Use-case logic over the in-memory broker: no Redis, no Socket.IO."""

import asyncio

import pytest

from chat.core.fanout import Fanout
from chat.core.payloads import DmIn, parse
from chat.core.text import clean_text
from chat.errors import ChatError
from chat.models import Envelope, encode_envelope
from chat.refcount import RefCounts


class Recorder:
    """LocalDelivery that records what would reach local sockets."""

    def __init__(self):
        self.emitted = []

    async def emit(self, local_room, event, data, skip_user=None):
        self.emitted.append((local_room, event, data, skip_user))


class Messages:
    """Ordering stand-in recording what the fanout hands it."""

    def __init__(self):
        self.seen = []

    async def on_message(self, channel, message):
        self.seen.append((channel, message))


def test_refcounts_report_first_and_last_interest_only():
    refs = RefCounts()
    assert refs.acquire(["a", "b"]) == ["a", "b"]
    assert refs.acquire(["a"]) == []
    assert refs.release(["a"]) == []
    assert refs.release(["a", "b"]) == ["a", "b"]
    assert refs.release(["a"]) == []  # releasing what nobody holds is ignored
    assert len(refs) == 0


def test_text_rules():
    assert clean_text(" a\tb\r\nc\x07 ", 10) == "a\tb\nc"
    assert clean_text("é" * 4, 4) == "éééé"


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "x",
        [],
        {},
        {"to": "b"},
        {"to": 1, "text": "x"},
        {"to": "b", "text": 5},
        {"to": "b/../c", "text": "x"},
        {"to": "\ud800", "text": "x"},
        {"to": "b", "text": "x", "cid": ""},
    ],
)
def test_malformed_dm_payloads_are_invalid_requests(payload):
    with pytest.raises(ChatError) as err:
        parse(payload, DmIn)
    assert err.value.code == "invalid_request"


async def test_fanout_routes_messages_events_and_controls_and_never_raises():
    delivery, messages = Recorder(), Messages()
    fanout = Fanout(delivery, messages)
    await fanout("user:a", b"not json")
    await fanout("user:a", encode_envelope(Envelope("ctl", "nope")))
    await fanout("room:r", encode_envelope(Envelope("emit", "message", {"room": "r", "seq": 1})))
    await fanout("room:r", encode_envelope(Envelope("emit", "left", {"x": 1}, skip_user="u")))
    assert messages.seen == [("room:r", {"room": "r", "seq": 1})]
    assert delivery.emitted == [("room:r", "left", {"x": 1}, "u")]
    calls = []

    async def kick(channel, data):
        calls.append((channel, data))

    async def broken(channel, data):
        raise RuntimeError("bug")

    fanout.on_control("kick", kick)
    fanout.on_control("broken", broken)
    await fanout("user:a", encode_envelope(Envelope("ctl", "broken")))
    await fanout("user:a", encode_envelope(Envelope("ctl", "kick", {"jti": "j"})))
    await fanout("user:a", encode_envelope(Envelope("ctl", "kick", {"jti": "k"})))
    await asyncio.gather(*fanout._tails.values())
    assert calls == [("user:a", {"jti": "j"}), ("user:a", {"jti": "k"})]


async def test_control_actions_do_not_block_the_listener_and_keep_their_order():
    """An action may wait on the very listener that delivered it (a subscription's
    confirmation): the fanout must return at once."""
    release = asyncio.Event()
    order = []

    async def slow(channel, data):
        await release.wait()
        order.append(data)

    fanout = Fanout(Recorder(), Messages())
    fanout.on_control("slow", slow)
    for n in range(3):
        await asyncio.wait_for(
            fanout("user:a", encode_envelope(Envelope("ctl", "slow", n))), timeout=1
        )
    release.set()
    await asyncio.gather(*fanout._tails.values())
    assert order == [0, 1, 2]

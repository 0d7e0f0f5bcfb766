"""Use-case logic over the in-memory broker: no Redis, no Socket.IO."""

import pytest

from chat import keys
from chat.adapters.memory_broker import MemoryBroker, MemoryHub
from chat.core.fanout import Fanout
from chat.core.messaging import Messaging
from chat.core.payloads import DmIn, parse
from chat.core.text import clean_text
from chat.errors import ChatError
from chat.models import Envelope, Message, UserRef, encode_envelope
from chat.refcount import RefCounts


class Recorder:
    """LocalDelivery that records what would reach local sockets."""

    def __init__(self):
        self.emitted = []

    async def emit(self, local_room, event, data):
        self.emitted.append((local_room, event, data))

    async def disconnect(self, local_room, reason):
        self.emitted.append((local_room, "<disconnect>", reason))


class ListHistory:
    """History port over a dict of lists: the logic above it, not Redis, is under test here
    (the Redis implementation has its own tests against a real cluster)."""

    def __init__(self):
        self.rooms = {}
        self.tokens = {}

    async def append(self, message_id, room, sender, text, cid, token):
        if (room, sender.id, token) in self.tokens:
            return self.tokens[room, sender.id, token], False
        log = self.rooms.setdefault(room, [])
        message = Message(message_id, room, len(log) + 1, sender, text, 123, cid)
        log.append(message)
        self.tokens[room, sender.id, token] = message
        return message, True


class NoLimits:
    def __init__(self, wait=0.0):
        self.wait = wait

    async def take(self, scope, ident, rate, burst):
        return self.wait


def messaging(broker, history=None, limits=None, text_max=100):
    return Messaging(
        broker,
        history or ListHistory(),
        limits or NoLimits(),
        text_max=text_max,
        send_rate=10,
        send_burst=20,
    )


def node(hub):
    delivery = Recorder()
    broker = MemoryBroker(hub, Fanout(delivery))
    return broker, delivery.emitted


def test_refcounts_report_first_and_last_interest_only():
    refs = RefCounts()
    assert refs.acquire(["a", "b"]) == ["a", "b"]
    assert refs.acquire(["a"]) == []
    assert refs.release(["a"]) == []
    assert refs.release(["a", "b"]) == ["a", "b"]
    assert refs.release(["a"]) == []  # releasing what nobody holds is ignored
    assert len(refs) == 0


async def test_dm_reaches_recipient_and_sender_on_their_nodes_only():
    hub = MemoryHub()
    (broker_a, seen_a), (broker_b, seen_b), (broker_c, seen_c) = node(hub), node(hub), node(hub)
    await broker_a.subscribe([keys.user_channel("alice")])
    await broker_b.subscribe([keys.user_channel("bob")])
    await broker_c.subscribe([keys.user_channel("carol")])
    sender = messaging(broker_a)

    message = await sender.send_dm(UserRef("alice", "Alice"), "bob", "  hi\r\n ", "c1")

    assert (message.room, message.seq, message.text) == ("dm:alice:bob", 1, "hi")
    assert [(room, event) for room, event, _ in seen_a] == [("user:alice", "message")]
    assert [(room, event) for room, event, _ in seen_b] == [("user:bob", "message")]
    assert seen_c == []
    wire = seen_b[0][2]
    assert wire["from"] == {"id": "alice", "name": "Alice"} and wire["cid"] == "c1"


async def test_dm_to_oneself_is_published_once():
    hub = MemoryHub()
    broker, seen = node(hub)
    await broker.subscribe([keys.user_channel("alice")])
    await messaging(broker).send_dm(UserRef("alice", "Alice"), "alice", "note", None)
    assert len(seen) == 1


async def test_bad_text_is_refused_before_anything_is_published():
    hub = MemoryHub()
    broker, _ = node(hub)
    history = ListHistory()
    sender = messaging(broker, history, text_max=5)
    for text in ("   ", "\x00\x01", "toolong", None, 42):
        with pytest.raises(ChatError) as err:
            await sender.send_dm(UserRef("a", "A"), "b", text, None)
        assert err.value.code == "invalid_text"
    assert hub.published == [] and history.rooms == {}


async def test_a_rate_limited_send_stores_and_publishes_nothing():
    hub = MemoryHub()
    broker, _ = node(hub)
    history = ListHistory()
    with pytest.raises(ChatError) as err:
        await messaging(broker, history, NoLimits(wait=1.5)).send(
            UserRef("a", "A"), "lobby", "x", None
        )
    assert err.value.code == "rate_limited" and err.value.retry_after == 1.5
    assert hub.published == [] and history.rooms == {}


async def test_a_retry_with_the_same_cid_stores_once_and_answers_the_same_message():
    hub = MemoryHub()
    broker, _ = node(hub)
    await broker.subscribe([keys.room_channel("lobby")])
    history = ListHistory()
    sender = messaging(broker, history)
    first = await sender.send(UserRef("a", "A"), "lobby", "once", "cid-1")
    again = await sender.send(UserRef("a", "A"), "lobby", "once", "cid-1")
    assert first == again and len(history.rooms["lobby"]) == 1


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


async def test_fanout_drops_garbage_and_unknown_controls_without_raising():
    delivery = Recorder()
    fanout = Fanout(delivery)
    await fanout("user:a", b"not json")
    await fanout("user:a", encode_envelope(Envelope("ctl", "nope")))
    assert delivery.emitted == []
    calls = []

    async def kick(channel, data):
        calls.append((channel, data))

    fanout.on_control("kick", kick)
    await fanout("user:a", encode_envelope(Envelope("ctl", "kick", {"jti": "j"})))
    assert calls == [("user:a", {"jti": "j"})]

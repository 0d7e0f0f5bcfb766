"""Use-case logic over the in-memory broker: no Redis, no Socket.IO."""

import asyncio

import pytest

from chat.core.controls import Renamed, Revoke, control, room_notice
from chat.core.inbound import InboundDispatcher
from chat.core.limiter import EventLimiter
from chat.core.payloads import SEQ_MAX, DmIn, HistoryIn, MembersIn, SyncIn, parse
from chat.core.text import clean_text
from chat.errors import ChatError
from chat.models import Delivery, Envelope, UserRecord, decode_json, encode_envelope
from chat.refcount import RefCounts


class Recorder:
    """LocalDelivery that records what would reach local sockets."""

    def __init__(self):
        self.emitted = []

    async def emit_raw(self, local_room, event, raw, skip_user=None):
        self.emitted.append((local_room, event, raw, skip_user))


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


@pytest.mark.parametrize(
    ("shape", "payload"),
    [
        (HistoryIn, {"room": "r", "before": 2**63}),
        (HistoryIn, {"room": "r", "after": 2**64}),
        (SyncIn, {"rooms": {"r": 2**64}}),
        (MembersIn, {"room": "r", "offset": 2**63}),
    ],
)
def test_cursors_past_what_a_seq_can_be_are_invalid_requests(shape, payload):
    """They reached Redis as stream ids or ranges it refuses: an ``internal`` answer."""
    with pytest.raises(ChatError) as err:
        parse(payload, shape)
    assert err.value.code == "invalid_request"
    assert parse({"room": "r", "before": SEQ_MAX, "after": SEQ_MAX}, HistoryIn).after == SEQ_MAX


async def test_fanout_routes_messages_events_and_controls_and_never_raises():
    delivery, messages = Recorder(), Messages()
    fanout = InboundDispatcher(delivery, messages)
    await fanout("user:a", b"not json")
    await fanout("user:a", encode_envelope(Envelope("ctl", "nope")))
    message = Envelope("emit", "message", {"text": "hi"}, room="r", seq=1)
    await fanout("room:r", encode_envelope(message))
    await fanout("room:r", encode_envelope(Envelope("emit", "left", {"x": 1}, skip_user="u")))
    # The message's JSON is forwarded as it arrived: no decoding on the delivery path.
    assert messages.seen == [("room:r", Delivery("r", 1, b'{"text":"hi"}'))]
    assert delivery.emitted == [("room:r", "left", b'{"x":1}', "u")]
    calls = []

    async def revoke(channel, notice):
        calls.append((channel, notice))

    async def broken(channel, notice):
        raise RuntimeError("bug")

    fanout.on_control(Revoke, revoke)
    fanout.on_control(Renamed, broken)
    await fanout("user:a", encode_envelope(Envelope("ctl", "renamed", {"id": "a", "name": "A"})))
    await fanout("user:a", encode_envelope(Envelope("ctl", "revoke", {"jti": "j"})))
    # A control whose fields do not match its kind is dropped, never half-read.
    await fanout("user:a", encode_envelope(Envelope("ctl", "revoke", {"jti": 7})))
    later = Envelope("ctl", "revoke", {"jti": "k", "generation": 2})
    await fanout("user:a", encode_envelope(later))
    await asyncio.gather(*fanout._tails.values())
    assert calls == [("user:a", Revoke("j")), ("user:a", Revoke("k", generation=2))]


def test_controls_keep_the_json_nodes_of_the_previous_release_read():
    """Nodes of two releases run side by side during a rolling update."""
    ann = UserRecord("ann", "ann@example.com", "Ann", 0)
    assert decode_json(control("ann", Revoke("j", family="f"))[1]) == {
        "kind": "ctl", "event": "revoke", "data": {"jti": "j", "family": "f"},
    }  # fmt: skip
    channel, payload = control("bob", room_notice("r1", ann, joined=False))
    assert channel == "user:bob"
    assert decode_json(payload)["event"] == "room_removed"
    assert decode_json(payload)["data"] == {"room": "r1", "user": {"id": "ann", "name": "Ann"}}
    assert decode_json(control("ann", Renamed("ann", "Anna"))[1])["data"] == {
        "id": "ann", "name": "Anna",
    }  # fmt: skip


async def test_control_actions_do_not_block_the_listener_and_keep_their_order():
    """An action may wait on the very listener that delivered it (a subscription's
    confirmation): the fanout must return at once."""
    release = asyncio.Event()
    order = []

    async def slow(channel, data):
        await release.wait()
        order.append(data)

    fanout = InboundDispatcher(Recorder(), Messages())
    fanout.on_control(Revoke, slow)
    for n in range(3):
        notice = Envelope("ctl", "revoke", {"jti": str(n)})
        await asyncio.wait_for(fanout("user:a", encode_envelope(notice)), timeout=1)
    release.set()
    await asyncio.gather(*fanout._tails.values())
    assert order == [Revoke("0"), Revoke("1"), Revoke("2")]


class FakeBucket:
    """The cluster's bucket, in memory: grants up to ``want`` of what is left.  With a
    ``gate``, each call waits for it first (a round trip in flight until the test opens it)."""

    def __init__(self, tokens, gate=None):
        self.tokens, self.calls, self.gate = tokens, 0, gate
        self.asked = asyncio.Event()

    async def take(self, scope, ident, rate, burst, want=1):
        self.calls += 1
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
            await asyncio.sleep(0)  # a reply comes in a later turn of the loop, never at once
        granted = min(want, self.tokens)
        self.tokens -= granted
        return (granted, 0.0) if granted else (0, 0.5)


async def test_the_send_limit_is_spent_locally_in_leases_and_still_binds():
    now = [0.0]
    bucket = FakeBucket(tokens=12)
    limiter = EventLimiter(bucket, {"send": (10, 20)}, clock=lambda: now[0])
    for _ in range(10):
        await limiter.take("send", "ann")
    assert bucket.calls == 2  # leases of 5: two round trips for ten sends
    await limiter.take("send", "ann")  # the last 2 tokens of the bucket
    await limiter.take("send", "ann")
    with pytest.raises(ChatError) as err:
        await limiter.take("send", "ann")
    assert err.value.code == "rate_limited" and err.value.retry_after == 0.5
    bucket.tokens = 10
    now[0] = 0.5
    await limiter.take("send", "ann")  # a new lease of 5 ...
    now[0] = 59.0  # ... spent on later sends for up to a minute ...
    await limiter.take("send", "ann")
    assert bucket.calls == 5
    now[0] = 61.0  # ... unused for longer than a minute: dropped, not spent
    await limiter.take("send", "ann")
    assert bucket.tokens == 0 and bucket.calls == 6


async def test_a_refusal_is_remembered_for_its_wait_without_asking_again():
    """Past the limit each event asked the cluster again: a client that goes on sending cost
    a round trip per event."""
    now = [0.0]
    bucket = FakeBucket(tokens=0)
    limiter = EventLimiter(bucket, {"send": (10, 20)}, clock=lambda: now[0])
    for at in (0.0, 0.1, 0.4):
        now[0] = at
        with pytest.raises(ChatError) as err:
            await limiter.take("send", "ann")
        assert err.value.retry_after == pytest.approx(0.5 - at)
    assert bucket.calls == 1
    with pytest.raises(ChatError):  # per user: bob's bucket is asked
        await limiter.take("send", "bob")
    assert bucket.calls == 2
    bucket.tokens = 5
    now[0] = 0.5  # the wait is over: asked again
    await limiter.take("send", "ann")
    assert bucket.calls == 3


async def test_a_burst_taken_at_once_is_served_up_to_the_burst():
    """Concurrent takes share the lease being asked for instead of each drawing its own (the
    extra leases were dropped unspent: 4 of a burst of 20 went through)."""
    gate = asyncio.Event()
    bucket = FakeBucket(tokens=20, gate=gate)
    limiter = EventLimiter(bucket, {"send": (10, 20)}, clock=lambda: 0.0)
    takes = [asyncio.ensure_future(limiter.take("send", "ann")) for _ in range(25)]
    await bucket.asked.wait()  # every take has started: one bucket call is out, 24 wait for it
    assert bucket.calls == 1
    gate.set()
    results = await asyncio.gather(*takes, return_exceptions=True)
    refused = [r for r in results if isinstance(r, ChatError)]
    assert results[:20] == [None] * 20 and len(refused) == 5
    assert {r.code for r in refused} == {"rate_limited"}
    # Leases of 5 for the twenty, then one refusal answers everyone still waiting.
    assert bucket.tokens == 0 and bucket.calls == 5


async def test_a_take_cancelled_while_asking_leaves_the_others_served():
    gate = asyncio.Event()
    bucket = FakeBucket(tokens=20, gate=gate)
    limiter = EventLimiter(bucket, {"send": (10, 20)}, clock=lambda: 0.0)
    asker = asyncio.ensure_future(limiter.take("send", "ann"))
    await bucket.asked.wait()
    waiters = [asyncio.ensure_future(limiter.take("send", "ann")) for _ in range(3)]
    await asyncio.sleep(0)  # one turn of the loop (not a wait): the three wait for the asker
    waiters[0].cancel()  # a waiter gone: the others still wait for the asker
    asker.cancel()  # the asker gone: a waiter asks in its place
    gate.set()
    assert await asyncio.gather(*waiters[1:]) == [None, None]
    assert asker.cancelled() and waiters[0].cancelled()
    assert bucket.calls == 2 and bucket.tokens == 15  # the second lease serves both

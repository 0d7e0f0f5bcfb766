"""Use-case logic over the in-memory broker: no Redis, no Socket.IO."""

import asyncio

import pytest

from chat.core.fanout import Fanout
from chat.core.limiter import EventLimiter
from chat.core.payloads import DmIn, parse
from chat.core.text import clean_text
from chat.errors import ChatError
from chat.models import Delivery, Envelope, encode_envelope
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


async def test_fanout_routes_messages_events_and_controls_and_never_raises():
    delivery, messages = Recorder(), Messages()
    fanout = Fanout(delivery, messages)
    await fanout("user:a", b"not json")
    await fanout("user:a", encode_envelope(Envelope("ctl", "nope")))
    message = Envelope("emit", "message", {"text": "hi"}, room="r", seq=1)
    await fanout("room:r", encode_envelope(message))
    await fanout("room:r", encode_envelope(Envelope("emit", "left", {"x": 1}, skip_user="u")))
    # The message's JSON is forwarded as it arrived: no decoding on the delivery path.
    assert messages.seen == [("room:r", Delivery("r", 1, b'{"text":"hi"}'))]
    assert delivery.emitted == [("room:r", "left", b'{"x":1}', "u")]
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


class FakeBucket:
    """The cluster's bucket, in memory: grants up to ``want`` of what is left."""

    def __init__(self, tokens):
        self.tokens, self.calls = tokens, 0

    async def take(self, scope, ident, rate, burst, want=1):
        self.calls += 1
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

"""Socket lifetimes and sign-ins over in-memory ports (the Redis side has its own tests on a
real cluster, in test_sessions.py): a logout racing a handshake, the expiry sweep, refresh
outcomes."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from fakes import MemoryBroker, MemoryHub

from chat.core import controls
from chat.core.accounts import Accounts
from chat.core.connections import Conn, Connections
from chat.core.inbound import InboundDispatcher
from chat.core.lifetime import SESSION_END, Lifetimes
from chat.core.passwords import PasswordHasher
from chat.core.sessions import RefreshToken, Sessions
from chat.core.tokens import TokenService
from chat.errors import ChatError
from chat.models import UserRecord

ANN = UserRecord("ann", "ann@example.com", "Ann", 0)


class Users:
    async def user(self, user_id):
        return ANN if user_id == ANN.id else None

    async def users(self, user_ids):
        return {}


class Limits:
    """The denylist and buckets."""

    def __init__(self):
        self.denied = set()

    async def take(self, scope, ident, rate, burst, want=1):
        return want, 0.0

    async def revoke(self, jti, seconds):
        self.denied.add(jti)

    async def is_revoked(self, jti):
        return jti in self.denied


class SignIns:
    """The SessionStore port; ``rotate`` answers ``outcome``; ``on_check`` runs once a token's
    check has read everything (the denylist is read first, in the same batch)."""

    def __init__(self):
        self.families, self.gen, self.outcome = {}, defaultdict(int), "rotated"
        self.on_check = None

    async def start(self, user_id, family, digest, ttl_ms, max_families):
        self.families[(user_id, family)] = digest
        return self.gen[user_id]

    async def rotate(self, user_id, family, presented, digest, ttl_ms, grace_ms):
        if self.outcome == "reused":
            self.families.pop((user_id, family), None)
        return self.outcome, self.gen[user_id]

    async def end(self, user_id, family):
        self.families.pop((user_id, family), None)

    async def end_all(self, user_id):
        self.families = {k: v for k, v in self.families.items() if k[0] != user_id}
        self.gen[user_id] += 1
        return self.gen[user_id]

    async def generation(self, user_id):
        return self.gen[user_id]

    async def alive(self, user_id, family, generation):
        live = not family or (user_id, family) in self.families
        answer = live and generation >= self.gen[user_id]
        hook, self.on_check = self.on_check, None
        if hook is not None:
            await hook()
        return answer


class Rooms:
    async def user_rooms(self, user_id):
        return {"lobby"}

    async def get_many(self, room_ids):
        return {}


class Ordering:
    def pointer(self, channel, room):
        return 0

    async def on_message(self, channel, message):
        pass


class Presence:
    async def connected(self, user_id, sid):
        pass

    async def disconnected(self, user_id, sid):
        pass


class Delivery:
    """Local rooms and what reached them."""

    def __init__(self):
        self.rooms, self.events, self.dropped = defaultdict(set), [], []

    def enter(self, sid, room):
        self.rooms[room].add(sid)

    def leave(self, sid, room):
        self.rooms[room].discard(sid)

    async def emit(self, room, event, data, skip_user=None):
        self.events += [(sid, event, data) for sid in self.rooms[room]]

    async def emit_raw(self, room, event, raw, skip_user=None):
        pass

    async def emit_to(self, sid, event, data):
        self.events.append((sid, event, data))

    async def disconnect(self, room, reason):
        self.dropped += sorted(self.rooms.pop(room, ()))


class Subscriptions:
    """Follows channels on the memory broker; ``before``/``after`` run around subscribing."""

    def __init__(self, broker):
        self.broker, self.before, self.after = broker, None, None

    async def acquire(self, channels):
        await self._run(self.before)
        await self.broker.subscribe(list(channels))
        await self._run(self.after)

    async def release(self, channels):
        await self.broker.unsubscribe(list(channels))

    @staticmethod
    async def _run(hook):
        if hook is not None:
            await hook()


class Node:
    """One node's use cases over the fakes, wired like chat/app.py wires them."""

    def __init__(self):
        self.limits, self.sign_ins, self.delivery = Limits(), SignIns(), Delivery()
        self.fanout = InboundDispatcher(self.delivery, Ordering())
        self.broker = MemoryBroker(MemoryHub(), self.fanout)
        tokens = TokenService(signing_key="s" * 32, issuer="chat")
        hasher = PasswordHasher(memory_cost=8192, time_cost=1, workers=1)
        accounts = Accounts(
            Users(), self.limits, hasher, tokens, login_ip_rate=100,
            sessions=self.sign_ins,
        )  # fmt: skip
        self.sessions = Sessions(
            self.sign_ins, Users(), self.limits, tokens, self.broker, refresh_ttl=60,
            refresh_ip_rate=100,
        )  # fmt: skip
        self.follow = Subscriptions(self.broker)
        self.connections = Connections(
            accounts, Users(), Rooms(), self.follow, Ordering(), self.delivery, Presence()
        )
        controls.register(self.fanout, self.connections)
        self.tokens = tokens

    async def settle(self):
        while self.fanout._tails:
            await asyncio.gather(*self.fanout._tails.values())

    async def handshake(self, sid, token):
        """What SocketServer does: the connect handler opens; once the client is connected,
        the socket enters its rooms, unless it was ended meanwhile."""
        try:
            conn = await self.connections.open(sid, token)
        except ChatError as exc:
            return f"refused: {exc.reason}"
        await self.settle()
        if conn.ended is not None:
            return f"ended: {conn.ended}"
        self.connections.enter(conn)
        await self.settle()
        return f"ended: {conn.ended}" if conn.ended else "in session"


async def signed_in(node):
    signed = await node.sessions.begin(ANN)
    return signed.token, node.tokens.verify(signed.token)


@pytest.mark.parametrize("everywhere", [False, True])
async def test_a_logout_before_the_users_channel_is_live_is_caught_at_connect(everywhere):
    node = Node()
    token, claims = await signed_in(node)
    logout = node.sessions.logout_everywhere if everywhere else node.sessions.logout
    node.follow.before = lambda: logout(claims)  # its notice reaches no node following
    assert await node.handshake("s1", token) == "refused: token_revoked"
    assert node.connections.by_sid == {} and len(node.broker.refs) == 0


@pytest.mark.parametrize("everywhere", [False, True])
async def test_a_logout_between_the_last_check_and_entering_the_rooms_ends_the_socket(
    everywhere,
):
    """The notice arrives while the socket is not yet in its token's local room: without the
    mark it would miss it and live on with a revoked token."""
    node = Node()
    token, claims = await signed_in(node)
    logout = node.sessions.logout_everywhere if everywhere else node.sessions.logout

    async def arm():  # once the channel is live: after the re-check has read the denylist
        node.sign_ins.on_check = lambda: logout(claims)

    node.follow.after = arm
    assert await node.handshake("s1", token) == "ended: token_revoked"


async def test_a_logout_after_the_handshake_ends_only_that_sign_ins_sockets():
    node = Node()
    token, claims = await signed_in(node)
    other, _ = await signed_in(node)
    assert await node.handshake("s1", token) == "in session"
    assert await node.handshake("s2", token) == "in session"
    assert await node.handshake("s3", other) == "in session"
    await node.sessions.logout(claims)
    await node.settle()
    assert node.delivery.dropped == ["s1", "s2"]
    ends = [
        (sid, data["code"]) for sid, event, data in node.delivery.events if event == SESSION_END
    ]
    assert sorted(ends) == [("s1", "token_revoked"), ("s2", "token_revoked")]


def conn(sid, exp, jti=None):
    return Conn(sid, ANN, jti or f"j-{sid}", exp)


async def test_the_sweep_ends_expired_sockets_once_each_and_marks_handshakes():
    now = [100.0]
    delivery = Delivery()
    lifetimes = Lifetimes(delivery, clock=lambda: now[0])
    a, b, c, closed = conn("a", 101), conn("b", 103), conn("c", 101, jti="j-a"), conn("d", 101)
    for each in (a, b, c, closed):
        lifetimes.track(each)
    lifetimes.forget(closed)
    for each in (a, b):
        delivery.enter(each.sid, f"jti:{each.jti}")  # c is still in its handshake
    assert await lifetimes.sweep() == 0
    now[0] = 101.0
    assert await lifetimes.sweep() == 2
    assert [x.ended for x in (a, b, c, closed)] == ["token_expired", None, "token_expired", None]
    assert delivery.dropped == ["a"]
    assert delivery.events == [("a", SESSION_END, {"code": "token_expired", "message": ANY_TEXT})]
    now[0] = 500.0
    assert await lifetimes.sweep() == 1 and delivery.dropped == ["a", "b"]


class _AnyText(str):
    def __eq__(self, other):
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_TEXT = _AnyText()


async def test_a_reused_refresh_token_ends_its_sign_in_and_says_so():
    node = Node()
    signed = await node.sessions.begin(ANN)
    node.sign_ins.outcome = "reused"
    with pytest.raises(ChatError) as err:
        await node.sessions.refresh(signed.refresh_token, "ip")
    assert (err.value.status, err.value.reason) == (401, "token_revoked")
    assert node.sign_ins.families == {}
    node.sign_ins.outcome = "grace"  # a concurrent refresh: an access token, no refresh token
    again = await node.sessions.begin(ANN)
    answer = await node.sessions.refresh(again.refresh_token, "ip")
    assert answer.refresh_token is None and "refresh_token" not in answer.wire()
    assert node.tokens.verify(answer.token).fam == RefreshToken.parse(again.refresh_token).family


@pytest.mark.parametrize(
    "raw", [None, 5, "", "a.b", "a.b.c.d", "a.b.c d", "a.b." + "x" * 200, "ä.b.c"]
)
def test_malformed_refresh_tokens_are_refused(raw):
    with pytest.raises(ChatError) as err:
        RefreshToken.parse(raw)
    assert err.value.status == 401

"""A socket's life on a node (chat/core/connections.py) over the fakes: the handshake refuses
bad or revoked tokens, the ``session`` lists the user's rooms with their pointers, channels are
followed once per node however many sockets need them and let go with the last one."""

from __future__ import annotations

import asyncio

import pytest
from fakes.failures import fail_once

from chat import channels
from chat.errors import ChatError, unavailable


def followed(node) -> set[str]:
    return {
        channel for channel, brokers in node.world.hub.subscribers.items() if node.broker in brokers
    }


@pytest.mark.parametrize("token", [None, "", "not.a.token", 42])
async def test_a_handshake_without_a_valid_token_is_refused(node, token):
    with pytest.raises(ChatError) as err:
        await node.connect("ann", token=token)
    assert err.value.code == "unauthorized"
    assert node.connections.by_sid == {} and followed(node) == set()


async def test_a_revoked_token_is_refused_and_leaves_nothing_behind(node, world):
    token, claims = world.tokens.issue("ann", "Ann")
    await world.limits.revoke(claims.jti, 60)
    with pytest.raises(ChatError) as err:
        await node.connect("ann", token=token)
    assert err.value.reason == "token_revoked"
    assert followed(node) == set() and not world.presence.is_online("ann")


async def test_a_token_of_a_deleted_account_is_refused(node, world):
    token, _ = world.tokens.issue("ghost", "Ghost")
    with pytest.raises(ChatError) as err:
        await node.connect("ghost", token=token)
    assert err.value.code == "unauthorized"


async def test_the_session_lists_the_rooms_with_pointers_and_dm_peer_names(node):
    bob = await node.connect("bob")
    await node.rooms.create(bob.conn.user, "books", "Books", True)
    await bob.call("invite", {"room": "books", "user": "ann"})
    await bob.call("send", {"room": "books", "text": "hi"})
    await bob.call("dm", {"to": "ann", "text": "psst"})
    ann = await node.connect("ann")
    [session] = ann.events("session")
    assert session["user"] == {"id": "ann", "email": "ann@example.com", "name": "Ann"}
    counts = {"read_seq": 0, "mentions": 0}  # issue 16: ann has read nothing yet
    counts |= {"managed": False, "role": "member"}  # issue 17: the caller's role
    assert session["rooms"] == [
        {"id": "books", "name": "Books", "private": True, "last_seq": 1, "unread": 1, **counts},
        {"id": "dm:ann:bob", "name": "Bob", "private": True, "last_seq": 1, "unread": 1, **counts},
        {"id": "lobby", "name": "Lobby", "private": False, "last_seq": 0, "unread": 0, **counts},
    ]
    assert session["settings"] == {"receipts": True}
    assert followed(node) >= {channels.user_channel("ann"), channels.room_channel("books")}
    assert channels.room_channel("dm:ann:bob") not in followed(node)  # DMs use the users' channels


async def test_channels_are_followed_once_per_node_and_released_with_the_last_socket(node):
    lobby = channels.room_channel("lobby")
    first, second = await node.connect("ann"), await node.connect("bob")
    assert node.broker.refs.count(lobby) == 2  # one subscription, counted per socket
    await first.close()
    assert lobby in followed(node)
    await second.close()
    assert followed(node) == set()
    assert node.connections.by_sid == {} and node.connections.by_user == {}


async def test_a_join_on_one_node_makes_the_users_sockets_on_every_node_follow(node, other):
    ann, ann_phone = await node.connect("ann"), await other.connect("ann")
    bob = await node.connect("bob")
    await node.rooms.create(bob.conn.user, "books", None, False)
    await ann.call("join", {"room": "books"})
    await other.settle()
    assert "books" in ann_phone.conn.rooms
    assert channels.room_channel("books") in followed(other)
    sent = await bob.call("send", {"room": "books", "text": "to both devices"})
    assert ann_phone.events("message") == [sent["message"]]
    await ann_phone.call("leave", {"room": "books"})
    await node.settle()
    assert "books" not in ann.conn.rooms and ann.events("left")[-1]["room"] == "books"


class Paused:
    """Wraps an async callable: its first call from ``arm()`` on (once ``when()`` holds)
    waits for ``go`` (a read of the handshake held in flight while the test changes the
    user's state).  The reply is the one read before: a server answers as of when it ran."""

    def __init__(self, inner):
        self.inner, self.when = inner, None
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    def arm(self, when=lambda: True):
        self.when = when
        return self

    async def __call__(self, *args, **kwargs):
        if self.when is not None and self.when():
            self.when = None
            answer = await self.inner(*args, **kwargs)
            self.reached.set()
            await self.go.wait()
            return answer
        return await self.inner(*args, **kwargs)


async def reconnect_while(node, world, user_id, paused, change):
    """``user_id`` opens a new socket; ``change`` runs while the handshake's read is held."""
    token = world.tokens.issue(user_id, world.accounts.records[user_id].name)[0]
    opening = asyncio.ensure_future(node.connections.open(f"sid-{user_id}-new", token))
    await paused.reached.wait()
    await change()
    paused.go.set()
    conn = await opening
    await node.settle()
    await node.delivery.emit_to(conn.sid, "session", node.connections.enter(conn))
    return conn


@pytest.mark.parametrize("held", ["rooms read", "counts read"])
async def test_a_kick_during_a_handshake_reaches_the_new_socket(node, world, held):
    """Held before the user's channel is live (the kick's notice is never heard), or once it
    is live but before the socket is registered (the notice finds no socket)."""
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await node.rooms.create(ann.conn.user, "club", None, True, managed=True)
    assert (await ann.call("invite", {"room": "club", "user": "bob"}))["ok"]
    await node.settle()
    await bob.close()
    if held == "rooms read":
        paused = world.rooms.get_many = Paused(world.rooms.get_many).arm()
    else:
        paused = node.connections._counts = Paused(node.connections._counts).arm()

    async def kick():
        assert (await ann.call("kick", {"room": "club", "user": "bob"}))["ok"]

    conn = await reconnect_while(node, world, "bob", paused, kick)
    assert "club" not in conn.rooms
    assert "club" not in [r["id"] for r in node.delivery.events(conn.sid, "session")[0]["rooms"]]
    assert (await ann.call("send", {"room": "club", "text": "members only"}))["ok"]
    assert node.delivery.events(conn.sid, "message") == []


async def test_an_invite_and_a_rename_during_a_handshake_reach_the_new_socket(node, world):
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await node.rooms.create(ann.conn.user, "club", None, True)
    await bob.close()
    paused = node.connections._counts = Paused(node.connections._counts).arm()

    async def invite_and_rename():
        assert (await ann.call("invite", {"room": "club", "user": "bob"}))["ok"]
        await node.profile.rename("bob", "Robert")

    conn = await reconnect_while(node, world, "bob", paused, invite_and_rename)
    session = node.delivery.events(conn.sid, "session")[0]
    assert "club" in [r["id"] for r in session["rooms"]] and conn.user.name == "Robert"
    assert (await ann.call("send", {"room": "club", "text": "welcome"}))["ok"]
    assert [m["text"] for m in node.delivery.events(conn.sid, "message")] == ["welcome"]


async def test_a_kick_that_races_the_handshakes_second_read_is_not_undone_by_it(node, world):
    """The second read of the user's rooms answers before the kick; the kick's notice is
    applied before that answer is: the stale answer must not put the room back."""
    ann, bob = await node.connect("ann"), await node.connect("bob")
    await node.rooms.create(ann.conn.user, "club", None, True, managed=True)
    assert (await ann.call("invite", {"room": "club", "user": "bob"}))["ok"]
    await node.settle()
    await bob.close()
    registered = lambda: "sid-bob-new" in node.connections.by_sid  # noqa: E731
    paused = world.rooms.user_rooms = Paused(world.rooms.user_rooms).arm(registered)

    async def kick():
        assert (await ann.call("kick", {"room": "club", "user": "bob"}))["ok"]
        await node.settle()  # the notice reached the registered socket

    conn = await reconnect_while(node, world, "bob", paused, kick)
    assert "club" not in conn.rooms
    assert (await ann.call("send", {"room": "club", "text": "members only"}))["ok"]
    assert node.delivery.events(conn.sid, "message") == []


async def test_a_handshake_that_fails_after_following_its_channels_lets_them_go(node):
    async def failing(user_id, rooms):
        raise unavailable()

    node.connections._counts = failing
    with pytest.raises(ChatError):
        await node.connect("ann")
    assert node.connections.by_sid == {} and followed(node) == set()


async def test_a_room_whose_channel_could_not_be_followed_is_not_listed_on_the_socket(node, other):
    """An invite's notice that fails to follow the room leaves the socket as it was, so the
    socket's next use of the room follows it (listed without its channel, it never was)."""
    ann, bob = await node.connect("ann"), await other.connect("bob")
    await node.rooms.create(ann.conn.user, "club", None, True)
    club = channels.room_channel("club")
    failed = fail_once(other.connections._subscriptions, "_baselines", lambda ch: ch == club)
    assert (await ann.call("invite", {"room": "club", "user": "bob"}))["ok"]
    await other.settle()
    assert failed and "club" not in bob.conn.rooms
    assert (await bob.call("send", {"room": "club", "text": "here"}))["ok"]
    assert (await ann.call("send", {"room": "club", "text": "welcome"}))["ok"]
    await other.settle()
    assert [m["text"] for m in bob.events("message")][-1] == "welcome"


async def test_a_room_listed_for_a_user_who_is_no_member_is_never_followed(node, world):
    """An invite whose second write (the room's members) failed leaves the room in the
    guest's list only: their sockets must not receive the private room for it."""
    ann = await node.connect("ann")
    await node.rooms.create(ann.conn.user, "secret", None, True)
    world.rooms.lists.setdefault("bob", set()).add("secret")
    bob = await node.connect("bob")
    assert "secret" not in bob.conn.rooms
    assert "secret" not in {r["id"] for r in bob.events("session")[0]["rooms"]}
    assert (await ann.call("send", {"room": "secret", "text": "for members"}))["ok"]
    await node.settle()
    assert bob.events("message") == []
    assert (await bob.call("join", {"room": "secret"}))["error"]["code"] == "forbidden"

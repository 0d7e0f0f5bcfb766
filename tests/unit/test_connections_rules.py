"""A socket's life on a node (chat/core/connections.py) over the fakes: the handshake refuses
bad or revoked tokens, the ``session`` lists the user's rooms with their pointers, channels are
followed once per node however many sockets need them and let go with the last one."""

from __future__ import annotations

import pytest

from chat import channels
from chat.errors import ChatError


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

"""Every pub/sub channel name, and the local Socket.IO room names derived from them.

Channels live on the standalone pub/sub shards, one shard per channel chosen by the
consistent-hash ring (``shardring``); they are not cluster keys and carry no hash tag.
The local Socket.IO room names sit here too because a channel's payloads are delivered to the
local room of the same name: the two spellings must stay one.

Leaf module: imports nothing of the project.
"""

from __future__ import annotations

USER_PREFIX = "user:"
ROOM_PREFIX = "room:"
PRESENCE_PREFIX = "presence:"


# --- pub/sub channels (sharded by shardring over the standalone shards) ---------------------


def user_channel(user_id: str) -> str:
    """Channel of everything addressed to one user: DMs, control messages, session events."""
    return f"{USER_PREFIX}{user_id}"


def is_user_channel(channel: str) -> bool:
    return channel.startswith(USER_PREFIX)


def room_channel(room_id: str) -> str:
    """Channel of one room's live messages."""
    return f"{ROOM_PREFIX}{room_id}"


def presence_channel(user_id: str) -> str:
    """Channel of one user's online/offline transitions and renames, for their watchers."""
    return f"{PRESENCE_PREFIX}{user_id}"


def channel_entity(channel: str) -> tuple[str, str]:
    """Split a channel into ``(kind, id)``: ``("user", "u1")``, ``("room", "lobby")``..."""
    kind, sep, ident = channel.partition(":")
    if not sep or kind not in ("user", "room", "presence"):
        raise ValueError(f"not a chat channel: {channel!r}")
    return kind, ident


# --- local Socket.IO rooms (in-process only) ----------------------------------------------------


def user_sio_room(user_id: str) -> str:
    """Local Socket.IO room holding every socket of one user on this node."""
    return user_channel(user_id)


def token_sio_room(jti: str) -> str:
    """Local Socket.IO room of the sockets opened with one token (revoked together)."""
    return f"jti:{jti}"


def room_sio_room(room_id: str) -> str:
    return room_channel(room_id)

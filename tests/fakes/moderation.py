"""``RoleStore`` in memory, honest to ``chat/adapters/cluster/moderation.py``: the roles a room
lists (its creator counts as owner while it lists no owner, and is written down by the first
action that passes), the same rules in the same order, bans and mutes with expiries on the
store's clock, and the ``moderation`` entry appended with the room's next seq; a refusal
changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Collection

from chat.errors import moderation_refusal
from chat.models import Message
from chat.ports import ModerationRequest
from fakes.history import MemoryHistory
from fakes.rooms import MemoryRooms

#: Actions whose target must be a member.
MEMBERS_ONLY = ("kick", "mute", "role", "transfer")


class MemoryModeration:
    def __init__(self, rooms: Callable[[], MemoryRooms], history: MemoryHistory) -> None:
        self._rooms = rooms  # the world's, looked up on each call (a test may replace it)
        self.history = history
        self.bans: dict[str, dict[str, int]] = {}
        self.mutes: dict[str, dict[str, int]] = {}
        self.admins: set[str] = set()  # service admins
        self._done: dict[tuple[str, str, str], Message] = {}  # requests that landed

    @property
    def _roles(self) -> dict[str, dict[str, str]]:
        return self._rooms().roles

    async def roles(self, room_ids: Collection[str]) -> dict[str, dict[str, str]]:
        return {r: dict(self._roles.get(r, {})) for r in room_ids}

    async def service_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    async def restricted(self, room_id: str, user_id: str, what: str) -> int | None:
        table = self.bans if what == "ban" else self.mutes
        expiry = table.get(room_id, {}).get(user_id)
        if expiry is None or (expiry != 0 and expiry <= self.history.clock.ms()):
            return None
        return expiry

    async def moderate(self, req: ModerationRequest) -> Message | None:
        if (req.room, req.actor.id, req.random) in self._done:
            return self._done[req.room, req.actor.id, req.random]
        rooms = self._rooms()
        roles = dict(self._roles.get(req.room, {}))
        seed = None
        if "owner" not in roles.values():
            room = rooms.rooms.get(req.room)
            seed = room.created_by if room is not None and room.created_by else None
            if seed:
                roles[seed] = "owner"
        self._check(req, roles, req.target.id in rooms.members.get(req.room, set()))
        ts = self.history.clock.ms()
        if self._nothing_to_do(req, roles.get(req.target.id, "member"), ts):
            return None
        stored = self._roles.setdefault(req.room, {})
        if seed:
            stored[seed] = "owner"
        expiry = self._apply(req, stored, roles, ts)
        log = self.history.logs.setdefault(req.room, [])
        seq = len(log) + 1
        entry = Message(
            f"{seq}.{req.random}", req.room, seq, req.actor, ts, kind="moderation",
            action=req.action, user=req.target, until=expiry or None,
            role=req.role if req.action == "role" else None,
        )  # fmt: skip
        log.append(entry)
        self._done[req.room, req.actor.id, req.random] = entry
        return entry

    @staticmethod
    def _check(req: ModerationRequest, roles: dict[str, str], member: bool) -> None:
        mine = "owner" if req.service_admin else roles.get(req.actor.id, "member")
        theirs = roles.get(req.target.id, "member")
        if req.actor.id == req.target.id or theirs == "owner":
            raise moderation_refusal("forbidden")
        if req.action in ("role", "transfer"):
            if mine != "owner":
                raise moderation_refusal("forbidden")
        elif mine == "member" or (theirs == "admin" and mine != "owner"):
            raise moderation_refusal("forbidden")
        if not member and req.action in MEMBERS_ONLY:
            raise moderation_refusal("not_member")

    def _nothing_to_do(self, req: ModerationRequest, theirs: str, ts: int) -> bool:
        def active(table: dict[str, dict[str, int]]) -> bool:
            expiry = table.get(req.room, {}).get(req.target.id)
            return expiry is not None and (expiry == 0 or expiry > ts)

        return (
            (req.action == "unban" and not active(self.bans))
            or (req.action == "unmute" and not active(self.mutes))
            or (req.action == "role" and req.role == theirs)
        )

    def _apply(
        self, req: ModerationRequest, stored: dict[str, str], roles: dict[str, str], ts: int
    ) -> int | None:
        target, action = req.target.id, req.action
        if action in ("kick", "ban"):
            stored.pop(target, None)
        if action == "ban":
            expiry = ts + req.duration_ms if req.duration_ms > 0 else 0
            self.bans.setdefault(req.room, {})[target] = expiry
            return expiry
        if action == "mute":
            expiry = ts + req.duration_ms
            self.mutes.setdefault(req.room, {})[target] = expiry
            return expiry
        if action in ("unban", "unmute"):
            (self.bans if action == "unban" else self.mutes).get(req.room, {}).pop(target, None)
        elif action == "role":
            if req.role == "admin":
                stored[target] = "admin"
            else:
                stored.pop(target, None)
        elif action == "transfer":
            for user, role in roles.items():
                if role == "owner":
                    stored[user] = "admin"
            stored[target] = "owner"
        return None

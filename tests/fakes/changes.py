"""``MessageChanges`` in memory, honest to ``chat/adapters/cluster/changes.py``: the target found
by id (a change entry is no message), the same rules in the same order, the change entry
appended with the room's next seq and the target's state and reactors rewritten with it; a
refusal changes nothing; a repeated token answers the first entry; a DM closed by a block
(``MemoryHistory.gates``) takes deletes only."""

from __future__ import annotations

from typing import Any

from chat.errors import forbidden, refusal
from chat.models import Message
from chat.ports import ChangeRequest
from fakes.history import MemoryHistory


class MemoryChanges:
    def __init__(self, history: MemoryHistory) -> None:
        self.history = history

    async def change(self, req: ChangeRequest) -> tuple[Message | None, bool]:
        h = self.history
        gate = h.gates.get(req.room, set())
        if req.kind != "delete" and gate - {"x"}:
            raise forbidden()
        first = h.retried(req.room, req.sender.id, req.token)
        if first is not None:
            return first, False
        log = h.logs.get(req.room, [])
        target = log[req.target_seq - 1] if 0 < req.target_seq <= len(log) else None
        if target is None or target.kind is not None or target.id != req.target:
            raise refusal("no_message")
        by_moderator = req.kind == "delete" and target.sender.id != req.sender.id and req.moderator
        if req.kind != "react" and target.sender.id != req.sender.id and not by_moderator:
            raise refusal("forbidden")
        states = h.state.get(req.room, {})
        state: dict[str, Any] = dict(states.get(req.target_seq, {}))
        if state.get("deleted"):
            raise refusal("message_deleted")
        ts = h.clock.ms()
        rx = set(h.reactors.get((req.room, req.target_seq), set()))  # written back if stored
        if req.kind == "edit":
            if req.edit_window_ms and ts - target.ts > req.edit_window_ms:
                raise refusal("edit_window_closed")
            state.update(text=req.text, edited_ts=ts)
        elif req.kind == "delete":
            state = {"deleted": True}
            rx.clear()
        elif not self._react(req, state, rx):
            return None, False
        seq = len(log) + 1
        entry = Message(
            f"{seq}.{req.random}", req.room, seq, req.sender, ts,
            text=req.text if req.kind == "edit" else None, cid=req.cid, kind=req.kind,
            target=req.target, target_seq=req.target_seq,
            emoji=req.emoji if req.kind == "react" else None,
            on=req.on if req.kind == "react" else None, by_moderator=by_moderator,
        )  # fmt: skip
        h.state.setdefault(req.room, states)[req.target_seq] = {**state, "v": seq}
        if rx:  # an empty set is no key in Redis
            h.reactors[(req.room, req.target_seq)] = rx
        else:
            h.reactors.pop((req.room, req.target_seq), None)
        h.logs.setdefault(req.room, log).append(entry)
        h.remember(req.room, req.sender.id, req.token, entry)
        return entry, True

    @staticmethod
    def _react(req: ChangeRequest, state: dict[str, Any], rx: set[str]) -> bool:
        """Apply a reaction to ``state`` and ``rx``; False when it changes nothing."""
        member = f"{req.emoji}\n{req.sender.id}"
        if (member in rx) == req.on:
            return False
        counts = dict(state.get("reactions", {}))
        emoji = req.emoji or ""
        if req.on:
            mine = sum(f"{e}\n{req.sender.id}" in rx for e in counts)
            if (emoji not in counts and len(counts) >= req.max_emoji) or mine >= req.max_per_user:
                raise refusal("too_many_reactions")
            rx.add(member)
            counts[emoji] = counts.get(emoji, 0) + 1
        else:
            rx.discard(member)
            counts[emoji] = counts.get(emoji, 1) - 1
            if counts[emoji] <= 0:
                del counts[emoji]
        state.pop("reactions", None)
        if counts:
            state["reactions"] = counts
        return True

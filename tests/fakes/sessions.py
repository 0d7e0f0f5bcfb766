"""``SessionStore`` in memory, honest to ``chat/adapters/cluster_sessions.py``: families with a
current and a previous secret (``grace`` within ``grace_ms`` of the rotation), retired secrets
recognised as a reuse (which ends the family), unknown secrets only refused; beyond
``max_families`` the families closest to expiry make room; ``end_all`` raises the generation."""

from __future__ import annotations

from dataclasses import dataclass, field

from fakes.clock import Clock

RETIRED_KEPT = 16


@dataclass
class Family:
    cur: str
    exp: int  # ms
    rot: int
    prev: str = ""
    old: list[str] = field(default_factory=list)


class MemorySessions:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.families: dict[str, dict[str, Family]] = {}
        self.generations: dict[str, int] = {}

    async def start(
        self, user_id: str, family: str, digest: str, ttl_ms: int, max_families: int
    ) -> int:
        now, mine = self.clock.ms(), self.families.setdefault(user_id, {})
        for name in [n for n, f in mine.items() if f.exp <= now]:
            del mine[name]
        by_expiry = sorted(mine, key=lambda n: mine[n].exp)
        for name in by_expiry[: max(0, len(mine) - max_families + 1)]:
            del mine[name]
        mine[family] = Family(digest, now + ttl_ms, now)
        return self.generations.get(user_id, 0)

    async def rotate(
        self, user_id: str, family: str, presented: str, digest: str, ttl_ms: int, grace_ms: int
    ) -> tuple[str, int]:
        now, gen = self.clock.ms(), self.generations.get(user_id, 0)
        mine = self.families.get(user_id, {})
        f = mine.get(family)
        if f is None or f.exp <= now:
            mine.pop(family, None)
            return "unknown", gen
        if f.cur == presented:
            old = ([f.prev] if f.prev else []) + f.old
            mine[family] = Family(digest, now + ttl_ms, now, f.cur, old[:RETIRED_KEPT])
            return "rotated", gen
        if f.prev == presented and f.cur == digest:  # this rotation again (a resend)
            return "rotated", gen
        if f.prev == presented and now - f.rot <= grace_ms:
            return "grace", gen
        if presented != f.prev and presented not in f.old:
            return "unknown", gen
        del mine[family]
        return "reused", gen

    async def end(self, user_id: str, family: str) -> None:
        self.families.get(user_id, {}).pop(family, None)

    async def end_all(self, user_id: str) -> int:
        self.families.pop(user_id, None)
        self.generations[user_id] = self.generations.get(user_id, 0) + 1
        return self.generations[user_id]

    async def generation(self, user_id: str) -> int:
        return self.generations.get(user_id, 0)

    async def alive(self, user_id: str, family: str, generation: int) -> bool:
        if generation < self.generations.get(user_id, 0):
            return False
        return not family or family in self.families.get(user_id, {})

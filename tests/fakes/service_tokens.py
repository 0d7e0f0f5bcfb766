"""``ServiceTokenStore`` in memory, honest to ``chat/adapters/cluster/service_tokens.py``."""

from __future__ import annotations

import msgspec

from chat.models import ServiceToken


class MemoryServiceTokens:
    def __init__(self) -> None:
        self.tokens: dict[str, ServiceToken] = {}
        self.admins: set[str] = set()

    async def add(self, token: ServiceToken) -> None:
        if self.tokens.get(token.id, token) != token:  # the same record again: a resend
            raise RuntimeError(f"service token id {token.id} exists")
        self.tokens[token.id] = token
        if "admin" in token.scopes:
            self.admins.add(token.user)

    async def get(self, token_id: str) -> ServiceToken | None:
        return self.tokens.get(token_id)

    async def all(self) -> list[ServiceToken]:
        return list(self.tokens.values())

    async def revoke(self, token_id: str, now_ms: int) -> ServiceToken | None:
        token = self.tokens.get(token_id)
        if token is None:
            return None
        if not token.revoked:
            token = self.tokens[token_id] = msgspec.structs.replace(token, revoked=now_ms, hash="")
        self.admins.discard(token.user)
        return token

    async def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins

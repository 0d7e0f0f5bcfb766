"""Composition root of ``chat tokens``: the operator creates, lists and revokes service tokens
(the logic is ``chat/core/service.py``'s, the Redis the adapters').  It connects to the cluster,
and for ``revoke`` to the pub/sub shards, with the same ``CHAT_*`` settings as ``chat serve``.

Exit codes: 0 done, 1 not done (the cluster unreachable; or the token revoked but its open
sockets not told: run ``revoke`` again), 2 refused (nothing changed: a bad name or scope, an
unknown token).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.service_tokens import ClusterServiceTokens
from chat.adapters.cluster.shardset import ClusterShardSet
from chat.adapters.redis_common import redis_access
from chat.adapters.shards.announce import AnnounceFailed, announcer
from chat.admin import operator_cluster
from chat.config import Settings
from chat.core.service import ServiceTokens
from chat.errors import ChatError
from chat.models import Layout, ServiceToken


async def tokens(settings: Settings, command: str, *, name: str = "",
                 scopes: list[str] | None = None, token_id: str = "") -> int:  # fmt: skip
    cluster = await operator_cluster(settings, f"chat tokens {command}")
    if cluster is None:
        return 1
    try:
        layout = await ClusterShardSet(cluster).read() or Layout(0, settings.shard_urls)
        announce = announcer(layout, redis_access(settings, "shards"))
        users = ClusterAccounts(cluster, ClusterRoster(cluster))
        service = ServiceTokens(ClusterServiceTokens(cluster), users, announce)
        return await _run(service, command, name, scopes or [], token_id, sys.stdout)
    except AnnounceFailed as exc:
        print(f"chat tokens {command}: revoked, but its open sockets were not told ({exc}): "
              "run it again", file=sys.stderr)  # fmt: skip
        return 1
    except ChatError as exc:
        print(f"chat tokens {command}: {exc.message}", file=sys.stderr)
        return 2 if exc.status < 500 else 1  # 503: the cluster failing over
    finally:
        await cluster.stop()


async def _run(service: ServiceTokens, command: str, name: str, scopes: list[str],
               token_id: str, out: TextIO) -> int:  # fmt: skip
    if command == "create":
        record, token = await service.create(name, scopes)
        # The token alone on stdout (for scripts); what it is on stderr.
        print(token, file=out)
        print(f"created {_line(record)}\nthe token is shown this once: keep it secret",
              file=sys.stderr)  # fmt: skip
    elif command == "list":
        for record in await service.list():
            print(_line(record), file=out)
    elif command == "revoke":
        record = await service.revoke(token_id)
        print(f"revoked {_line(record)}", file=out)
    return 0


def _line(token: ServiceToken) -> str:
    """One token, without its secret (there is none to show) nor its hash."""
    state = f"revoked {_when(token.revoked)}" if token.revoked else "active"
    return (f"{token.id} name={token.name!r} user={token.user} scopes={','.join(token.scopes)} "
            f"created={_when(token.created)} {state}")  # fmt: skip


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

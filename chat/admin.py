"""Composition root of ``chat shards``: the operator's view and changes of the pub/sub shard
set (the logic is ``chat/core/shardset.py``'s, the Redis the adapters'), and of ``chat users``
(account deletion, the name index).  It connects to the cluster and the shards with the same
``CHAT_*`` settings as ``chat serve``.

Exit codes: 0 done, 1 not done (the cluster unreachable, or the nodes did not all follow in
time: the change stays where it is, ``chat shards resume``), 2 refused (nothing changed).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.moderation import ClusterModeration
from chat.adapters.cluster.people import ClusterPeople
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.sessions import ClusterSessions
from chat.adapters.cluster.shardset import ClusterShardSet
from chat.adapters.redis_common import redis_access
from chat.adapters.shards.broker import ShardedBroker
from chat.adapters.shards.probe import channel_count, prober
from chat.config import Settings
from chat.core.deletion import AccountDeletion
from chat.core.shardset import Admin, NotAcknowledged, Refused
from chat.errors import ChatError
from chat.models import Layout

CONNECT_TIMEOUT = 10.0


async def operator_cluster(settings: Settings, label: str) -> Cluster | None:
    """The operator commands' cluster client, started with the settings of ``chat serve``;
    None (said on stderr, after ``label``) when the cluster is unreachable or refuses us."""
    cluster = Cluster(
        settings.cluster, node_id="admin", deadline=settings.cluster_deadline,
        replica_wait_ms=settings.replica_wait_ms, access=redis_access(settings, "cluster"),
    )  # fmt: skip
    try:
        await cluster.start(CONNECT_TIMEOUT)
    except RuntimeError as exc:  # unreachable, or credentials refused (never echoed)
        print(f"{label}: {exc}", file=sys.stderr)
        return None
    return cluster


async def shards(
    settings: Settings, command: str, arg: str | None, *, wait: float, weight: int = 1
) -> int:
    cluster = await operator_cluster(settings, f"chat shards {command}")
    if cluster is None:
        return 1
    presence = ClusterPresence(cluster, "admin", ClusterRoster(cluster))
    access = redis_access(settings, "shards")
    admin = Admin(ClusterShardSet(cluster), presence.live_nodes, prober(access), wait=wait)
    try:
        return await _run(admin, command, arg, weight, settings)
    except Refused as exc:
        print(f"chat shards {command}: refused: {exc}", file=sys.stderr)
        return 2
    except (NotAcknowledged, ChatError) as exc:  # ChatError: the cluster failing over
        print(f"chat shards {command}: {exc}", file=sys.stderr)
        return 1
    finally:
        await cluster.stop()


async def _run(admin: Admin, command: str, arg: str | None, weight: int, s: Settings) -> int:
    out = sys.stdout
    if command == "list":
        _print_layout(await admin.current(), out)
    elif command == "status":
        layout, nodes = await admin.status()
        _print_layout(layout, out)
        access = redis_access(s, "shards")
        urls = layout.urls
        counts = await asyncio.gather(*(channel_count(url, access) for url in urls.values()))
        for name, count in zip(urls, counts, strict=True):
            print(f"channels {name} {'unreachable' if count is None else count}", file=out)
        for node, step in sorted(nodes.items()):
            acked = "none" if step is None else f"{step[0]} {step[1]}"
            print(f"node {node} {acked}", file=out)
    elif command == "add":
        name, sep, url = (arg or "").partition("=")
        if not sep:
            raise Refused(f"{arg!r} is not NAME=redis://host:port")
        _print_layout(await admin.add(name.strip(), url.strip(), weight), out)
    elif command == "remove":
        _print_layout(await admin.remove(arg or ""), out)
    elif command == "resume":
        _print_layout(await admin.resume(), out)
    return 0


def _print_layout(layout: Layout, out: TextIO) -> None:
    print(f"epoch {layout.epoch} {layout.phase}", file=out)
    for name, url in sorted(layout.shards.items()):
        weight = layout.weights.get(name, 1)
        print(f"shard {name} {url}" + (f" weight {weight}" if weight != 1 else ""), file=out)
    for name, url in sorted(layout.previous.items()):
        print(f"previous {name} {url}", file=out)


async def users(settings: Settings, command: str, who: str | None) -> int:
    """``chat users delete <user id|email>`` (the effect of ``DELETE /api/me``, without the
    password) and ``chat users reindex`` (the name index of user search and the DM gates of
    blocks and deletions, for data stored before either existed).  Exit 0 done, 1 not done
    (unreachable: run it again), 2 no such user."""
    cluster = await operator_cluster(settings, f"chat users {command}")
    if cluster is None:
        return 1
    try:
        if command == "reindex":
            count = await _reindex(cluster)
            print(f"indexed {count} users; DM gates restored")
            return 0
        return await _delete(settings, cluster, who or "")
    except ChatError as exc:
        print(f"chat users {command}: {exc.message}", file=sys.stderr)
        return 2 if exc.code == "no_user" else 1
    except RuntimeError as exc:  # the pub/sub shards unreachable (never echoes credentials)
        print(f"chat users {command}: {exc}", file=sys.stderr)
        return 1
    finally:
        await cluster.stop()


async def _reindex(cluster: Cluster) -> int:
    roster = ClusterRoster(cluster)
    accounts, people = ClusterAccounts(cluster, roster), ClusterPeople(cluster)
    batch: list[str] = []
    count = 0
    async for user_id in people.user_ids():
        batch.append(user_id)
        if len(batch) >= 500:
            count += await _index(accounts, people, batch)
            batch = []
    count += await _index(accounts, people, batch)
    await people.close_deleted_dms()
    return count


async def _index(accounts: ClusterAccounts, people: ClusterPeople, ids: list[str]) -> int:
    """One batch of the scan: the users' names in the search index, their blocks' DM gates."""
    found = await accounts.users(ids)
    await people.reindex(found.values())
    await people.restore_gates(found)
    return len(found)


async def _delete(settings: Settings, cluster: Cluster, who: str) -> int:
    """The revocation and the members' ``left`` go out on the pub/sub shards: this command
    publishes like a node (on the shard set in force), without following any channel."""
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(cluster, roster, rooms_per_user=settings.rooms_per_user,
                         created_per_user=settings.rooms_created_per_user)  # fmt: skip
    broker = ShardedBroker(
        settings.shard_urls, _ignore, node_id="admin", access=redis_access(settings, "shards")
    )
    layout = await ClusterShardSet(cluster).read()
    if layout is not None:
        broker.adopt(layout)
    await broker.start(CONNECT_TIMEOUT)
    try:
        people = ClusterPeople(cluster)
        deletion = AccountDeletion(
            None, ClusterAccounts(cluster, roster), people, ClusterSessions(cluster), rooms,
            broker, ClusterModeration(cluster, max_len=settings.history_max),
        )  # fmt: skip
        try:
            user = await deletion.find(who)
        except ChatError:
            if "@" in who or not await deletion.finish(who):
                raise
            print(f"finished the deletion of {who}")
            return 0
        await deletion.delete(user)
        print(f"deleted {user.id}")
        return 0
    finally:
        await broker.stop()


async def _ignore(channel: str, payload: bytes) -> None:
    """This command follows no channel."""

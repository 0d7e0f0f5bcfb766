"""Composition root: picks the concrete classes and wires them; nothing else.

Every resource with a lifecycle is one aiohttp cleanup context (``resources``), registered in
start order: the cluster client, the shard set's record, the shard listeners, the presence
leases, the shard set's follower, the token clock.
The node is ready only once every shard is connected with all its channels subscribed and the
cluster answers.  aiohttp stops the contexts in reverse order, each one even when another
failed to stop, and after a failed start it stops those that had started.  Serving and the
graceful shutdown are ``serve.py``'s.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from chat.adapters import metrics
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.changes import ClusterChanges
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.limits import ClusterLimits
from chat.adapters.cluster.moderation import ClusterModeration
from chat.adapters.cluster.people import ClusterPeople
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.reads import ClusterReads
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.service_tokens import ClusterServiceTokens
from chat.adapters.cluster.sessions import ClusterSessions
from chat.adapters.cluster.shardset import ClusterShardSet
from chat.adapters.http import (
    health_routes,
    hide_server_version,
    json_errors,
    metrics_route,
    no_websocket_compression,
    origin_guard,
    security_headers,
    strict_transport,
    web_routes,
)
from chat.adapters.redis_common import redis_access
from chat.adapters.rest import Rest, check_rows
from chat.adapters.shards.broker import ShardedBroker
from chat.adapters.sio import SocketServer
from chat.config import Settings
from chat.core import controls
from chat.core.accounts import Accounts
from chat.core.changes import Changes
from chat.core.connections import Connections
from chat.core.deletion import AccountDeletion, DeletedNames
from chat.core.devices import DeviceCookies
from chat.core.events import ClientEvents
from chat.core.inbound import InboundDispatcher, room_ordering
from chat.core.lifetime import Lifetimes
from chat.core.limiter import EventLimiter
from chat.core.login_guard import LoginGuard, LoginPolicy
from chat.core.member_presence import MemberPresence
from chat.core.messaging import Messaging
from chat.core.moderation import Moderation
from chat.core.ordering import Ordering
from chat.core.passwords import PasswordHasher
from chat.core.people import People
from chat.core.presence import Presence
from chat.core.reading import Reading
from chat.core.recovery import Recovery
from chat.core.renaming import Renaming
from chat.core.roles import RoomRoles
from chat.core.rooms import Rooms
from chat.core.service import ServiceTokens
from chat.core.sessions import Sessions
from chat.core.shardset import Follower
from chat.core.subscriptions import Subscriptions, history_baselines
from chat.core.tokens import TokenService
from chat.core.typing_filter import TypingFilter

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # a fresh deployment may start the nodes before Redis is ready


@dataclass
class Node:
    settings: Settings
    sockets: SocketServer
    broker: ShardedBroker
    cluster: Cluster
    hasher: PasswordHasher
    ordering: Ordering
    presence: Presence
    rest: Rest
    inbound: InboundDispatcher
    lifetimes: Lifetimes
    follower: Follower
    draining: bool = field(default=False)
    render_metrics: Callable[[], bytes] | None = None
    #: The last readiness check's view of the cluster (a gauge reads it; the check is async).
    cluster_ok: float = -1.0

    def drain(self) -> None:
        self.draining = True

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        shards = self.broker.status()
        cluster_ok = await self.cluster.healthy()
        self.cluster_ok = float(cluster_ok)
        ready = not self.draining and self.broker.is_ready() and cluster_ok
        detail = {"node": self.settings.node_id, "draining": self.draining}
        shardset = self.follower.status()
        return ready, {**detail, "shards": shards, "shardset": shardset, "cluster": cluster_ok}


NODE = web.AppKey("node", Node)


def login_guard(s: Settings, limits: ClusterLimits) -> LoginGuard:
    """Device cookies are signed with a key derived from the JWT signing key, which every
    node of a deployment has."""
    hs = s.jwt_algorithm.startswith("HS")
    signing = s.jwt_secret if hs else Path(s.jwt_private_key).read_text()
    policy = LoginPolicy(s.login_fail_limit, s.login_ip_fail_limit, s.login_account_fail_limit)
    return LoginGuard(limits, DeviceCookies(signing), policy)


def token_service(settings: Settings) -> TokenService:
    if settings.jwt_algorithm.startswith("HS"):
        signing = verifying = settings.jwt_secret
    else:
        signing = Path(settings.jwt_private_key).read_text()
        verifying = Path(settings.jwt_public_key).read_text()
    return TokenService(
        signing_key=signing,
        verifying_key=verifying,
        issuer=settings.jwt_issuer,
        algorithm=settings.jwt_algorithm,
        ttl=settings.token_ttl,
    )


@dataclass
class Storage:
    """The Redis Cluster adapters."""

    cluster: Cluster
    history: ClusterHistory
    limits: ClusterLimits
    users: ClusterAccounts
    rooms: ClusterRooms
    presence: ClusterPresence
    reads: ClusterReads
    changes: ClusterChanges
    moderation: ClusterModeration
    people: ClusterPeople


def storage(s: Settings) -> Storage:
    cluster = Cluster(
        s.cluster, node_id=s.node_id, deadline=s.cluster_deadline,
        replica_wait_ms=s.replica_wait_ms, access=redis_access(s, "cluster"),
    )  # fmt: skip
    history = ClusterHistory(cluster, max_len=s.history_max, max_age_s=s.history_max_age)
    limits = ClusterLimits(
        cluster, login_cooldown_s=s.login_cooldown, login_cooldown_max_s=s.login_cooldown_max
    )
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(
        cluster, roster, rooms_per_user=s.rooms_per_user,
        created_per_user=s.rooms_created_per_user,
    )  # fmt: skip
    return Storage(
        cluster, history, limits, ClusterAccounts(cluster, roster), rooms,
        ClusterPresence(cluster, s.node_id, roster), ClusterReads(cluster),
        ClusterChanges(cluster, max_len=s.history_max, max_age_s=s.history_max_age),
        ClusterModeration(cluster, max_len=s.history_max),
        ClusterPeople(cluster),
    )  # fmt: skip


def build_node(s: Settings) -> Node:
    """Wire the node: adapters first, then the use cases over them (see docs/architecture.md)."""
    sockets = SocketServer(
        origins=s.origins, max_payload=s.max_payload, compression=s.ws_compression
    )
    db = storage(s)
    latencies = metrics.Latencies()
    order = room_ordering(sockets, db.history, s.order_hold_ms, latencies.delivery.observe)
    inbound = InboundDispatcher(sockets, order)
    broker = ShardedBroker(
        s.shard_urls, inbound, node_id=s.node_id, subscribe_timeout=s.subscribe_timeout,
        access=redis_access(s, "shards"),
    )  # fmt: skip
    hasher = PasswordHasher(
        workers=s.hash_workers, hash_workers=s.hash_register_workers,
        hash_waiting=s.hash_register_queue,
    )  # fmt: skip
    tokens, sign_ins = token_service(s), ClusterSessions(db.cluster)
    service = ServiceTokens(ClusterServiceTokens(db.cluster), db.users, broker.publish)
    accounts = Accounts(
        db.users, db.limits, hasher, tokens, login_ip_rate=s.login_ip_rate,
        register_ip_rate=s.register_ip_rate, register_ip_burst=s.register_ip_burst,
        guard=login_guard(s, db.limits), sessions=sign_ins, service=service,
    )  # fmt: skip
    sessions = Sessions(
        sign_ins, db.users, db.limits, tokens, broker, refresh_ttl=s.refresh_ttl,
        refresh_ip_rate=s.refresh_rate,
    )  # fmt: skip
    presence = Presence(
        db.presence, broker, grace=s.presence_grace, renew_every=s.lease_renew,
        lease=s.lease_ttl, per_user=s.connections_per_user,
    )  # fmt: skip
    subscriptions = Subscriptions(broker, order, history_baselines(db.rooms, db.history))
    limiter = EventLimiter(db.limits, s.event_limit_table())
    roles = RoomRoles(db.moderation, db.rooms, members_max=s.room_members_max)
    connections = Connections(
        accounts, db.users, db.rooms, subscriptions, order, sockets, presence, limiter,
        counts=db.reads.counts, roles=roles.roles_of,
    )  # fmt: skip
    rooms = Rooms(
        db.rooms, db.users, db.history, broker, connections, db.limits, roles,
        deleted=db.people.deleted,
    )  # fmt: skip
    people = People(db.people, db.users, broker, blocks_max=s.blocks_max)
    TypingFilter(db.people, connections, sockets).register(inbound)
    messaging = Messaging(
        broker, db.history, rooms, db.rooms, db.users, text_max=s.text_max,
        observe_write=latencies.write.observe,
    )  # fmt: skip
    shown = DeletedNames(db.history, db.people)  # read paths: deleted users' neutral name
    recovery = Recovery(shown, rooms, connections)
    changes = Changes(
        db.changes, rooms, messaging, text_max=s.text_max, edit_window_s=s.edit_window_s,
        roles=roles,
    )  # fmt: skip
    moderation = Moderation(roles, rooms, messaging, db.users, db.history, broker)
    member_presence = MemberPresence(presence, connections, rooms, db.rooms)
    renaming = Renaming(accounts, db.rooms, broker)
    reading = Reading(
        db.reads, rooms, db.rooms, db.users, broker, receipts_max=s.receipts_max_members
    )
    controls.register(inbound, connections)
    # Every event spends its row of the limit table first (an event without one: no start).
    events = ClientEvents(
        messaging,
        rooms,
        recovery,
        member_presence,
        renaming,
        changes,
        reading=reading,
        moderation=moderation,
        people=people,
    ).events()
    sockets.serve(connections, limiter.guard(events))
    deletion = AccountDeletion(
        accounts, db.users, db.people, sign_ins, db.rooms, broker, db.moderation
    )
    rest = Rest(
        accounts, renaming, messaging, rooms, recovery, shown, presence.online,
        token_ttl=s.token_ttl, cookie_secure=s.cookie_secure, trusted_proxies=s.trusted_proxies,
        limiter=limiter, sessions=sessions, reading=reading, changes=changes,
        moderation=moderation, people=people, deletion=deletion,
    )  # fmt: skip
    check_rows(rest.routes(), limiter)  # a signed-in route without a limit row: no start
    follower = Follower(ClusterShardSet(db.cluster), broker, s.node_id, s.shard_urls)
    node = Node(
        s, sockets, broker, db.cluster, hasher, order, presence, rest, inbound,
        connections.lifetimes, follower,
    )  # fmt: skip
    node.render_metrics = metrics.exporter(
        metrics.node_collector(
            presence,
            order,
            broker.status,
            inbound,
            messaging,
            lambda: broker.local_deliveries,
            lambda: broker.layout.step,
            lambda: node.cluster_ok,
        ),
        latencies,
    )
    return node


def create_app(settings: Settings) -> web.Application:
    node = build_node(settings)
    hide_server_version()
    app = web.Application(
        client_max_size=settings.max_payload,
        middlewares=([strict_transport] if settings.cookie_secure else [])
        + [security_headers, json_errors, origin_guard(settings.origins)]
        # Declined where the websocket is made when engineio is tuned; else by the headers.
        + ([] if settings.ws_compression or node.sockets.tuned else [no_websocket_compression]),
    )
    app[NODE] = node
    node.sockets.attach(app)
    app.add_routes(health_routes(node.readiness))
    if node.render_metrics is not None and settings.metrics_token:
        # The public port serves /metrics only to its bearer; without a token, only the
        # metrics listener (serve.py) does.
        app.add_routes([metrics_route(node.render_metrics, settings.metrics_token)])
    app.add_routes(node.rest.routes())
    app.add_routes(web_routes())
    app.cleanup_ctx.extend(resources(node))
    return app


CleanupCtx = Callable[[web.Application], AsyncIterator[None]]
Step = Callable[[], Awaitable[None] | None]


def resources(node: Node) -> list[CleanupCtx]:
    """One cleanup context per resource, in start order (stopped in reverse)."""
    cluster, broker, name = node.cluster, node.broker, node.settings.node_id
    return [
        resource("node", stop=lambda: log.info("node %s stopped", name)),
        resource("socket.io server", stop=node.sockets.sio.shutdown),
        resource("password hasher", stop=node.hasher.close),
        resource("cluster client", lambda: cluster.start(START_TIMEOUT), stop=cluster.stop),
        resource("ordering", stop=node.ordering.close),
        resource("inbound dispatcher", stop=node.inbound.close),
        # The record of the shard set decides which shards the listeners start on.
        resource("shard set record", node.follower.prepare, stop=lambda: None),
        resource("shard listeners", lambda: broker.start(START_TIMEOUT), stop=broker.stop),
        resource("presence leases", node.presence.start, stop=node.presence.stop),
        # After the lease: from its first read on, a coordinator waits for this node's acks.
        resource("shard set follower", node.follower.start, stop=node.follower.stop),
        resource("token lifetimes", node.lifetimes.start, stop=node.lifetimes.stop),
        # Stopped first: from then on readiness fails, whatever stops after it.
        resource("readiness", lambda: log.info("node %s started", name), stop=node.drain),
    ]


def resource(name: str, start: Step | None = None, *, stop: Step) -> CleanupCtx:
    """A cleanup context that starts a resource and stops it.  ``stop`` also runs when
    ``start`` failed half-way (a start may leave tasks or connections behind)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        try:
            if start is not None:
                await _maybe(start())
            log.debug("%s started", name)
            yield
        finally:
            try:
                await _maybe(stop())
            except Exception:
                log.exception("stopping %s failed", name)
                raise  # aiohttp still stops the others, then reports every failure
            log.debug("%s stopped", name)

    context.__qualname__ = f"resource[{name}]"
    return context


async def _maybe(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result

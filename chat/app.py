"""Composition root: picks the concrete classes, wires them, and owns their lifecycles.

Start order: cluster client, then the shard listeners; the node reports ready only when every
shard is connected with all its channels subscribed and the cluster answers.  Stop order is the
reverse, after the sockets were closed: every task is cancelled and awaited, every pool closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from chat import channels
from chat.adapters import metrics, running_loop
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.limits import ClusterLimits
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.sessions import ClusterSessions
from chat.adapters.http import (
    health_routes,
    hide_server_version,
    json_errors,
    metrics_route,
    no_websocket_compression,
    origin_guard,
    security_headers,
    start_metrics_listener,
    strict_transport,
    web_routes,
)
from chat.adapters.redis_common import redis_access
from chat.adapters.rest import Rest, check_rows
from chat.adapters.shards.broker import ShardedBroker
from chat.adapters.sio import SocketServer
from chat.config import Settings
from chat.core.accounts import Accounts
from chat.core.api import SocketApi
from chat.core.connections import Connections
from chat.core.devices import DeviceCookies
from chat.core.fanout import Fanout
from chat.core.follow import Baselines, Follow
from chat.core.limiter import EventLimiter
from chat.core.login_guard import LoginGuard, LoginPolicy
from chat.core.messaging import Messaging
from chat.core.ordering import FETCH_LIMIT, Ordering
from chat.core.passwords import PasswordHasher
from chat.core.presence import Presence
from chat.core.profile import Profile
from chat.core.recovery import Recovery
from chat.core.rooms import Rooms
from chat.core.sessions import Sessions
from chat.core.tokens import TokenService
from chat.core.watch import Watch
from chat.models import Delivery, is_dm_room, message_delivery

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
    fanout: Fanout
    draining: bool = field(default=False)
    render_metrics: Callable[[], bytes] | None = None

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        shards = self.broker.status()
        cluster_ok = await self.cluster.healthy()
        ready = not self.draining and self.broker.is_ready() and cluster_ok
        detail = {"node": self.settings.node_id, "draining": self.draining}
        return ready, {**detail, "shards": shards, "cluster": cluster_ok}


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
        ClusterPresence(cluster, s.node_id, roster),
    )  # fmt: skip


def ordering(sockets: SocketServer, history: ClusterHistory, hold_ms: int) -> Ordering:
    async def deliver(channel: str, message: Delivery) -> None:
        await sockets.emit_raw(channel, "message", message.raw)

    async def fetch(room: str, after: int, upto: int) -> list[Delivery]:
        found = await history.between(room, after, upto, FETCH_LIMIT)
        return [message_delivery(m) for m in found]

    return Ordering(deliver, fetch, hold=hold_ms / 1000)


def build_node(s: Settings) -> Node:
    """Wire the node: adapters first, then the use cases over them (see docs/architecture.md)."""
    sockets = SocketServer(
        origins=s.origins, max_payload=s.max_payload, compression=s.ws_compression
    )
    db = storage(s)
    order = ordering(sockets, db.history, s.order_hold_ms)
    fanout = Fanout(sockets, order)
    broker = ShardedBroker(
        s.shard_urls, fanout, node_id=s.node_id, subscribe_timeout=s.subscribe_timeout,
        access=redis_access(s, "shards"),
    )  # fmt: skip
    hasher = PasswordHasher(
        workers=s.hash_workers, hash_workers=s.hash_register_workers,
        hash_waiting=s.hash_register_queue,
    )  # fmt: skip
    tokens, sign_ins = token_service(s), ClusterSessions(db.cluster)
    accounts = Accounts(
        db.users, db.limits, hasher, tokens, login_ip_rate=s.login_ip_rate,
        register_ip_rate=s.register_ip_rate, register_ip_burst=s.register_ip_burst,
        guard=login_guard(s, db.limits), sessions=sign_ins,
    )  # fmt: skip
    sessions = Sessions(
        sign_ins, db.users, db.limits, tokens, broker, refresh_ttl=s.refresh_ttl,
        refresh_ip_rate=s.refresh_rate,
    )  # fmt: skip
    presence = Presence(
        db.presence, broker, grace=s.presence_grace, renew_every=s.lease_renew,
        lease=s.lease_ttl, per_user=s.connections_per_user,
    )  # fmt: skip
    follow = Follow(broker, order, _baselines(db.rooms, db.history))
    limiter = EventLimiter(db.limits, s.event_limit_table())
    connections = Connections(
        accounts, db.users, db.rooms, follow, order, sockets, presence, limiter
    )
    rooms = Rooms(db.rooms, db.users, db.history, broker, connections, db.limits)
    messaging = Messaging(broker, db.history, rooms, db.rooms, db.users, text_max=s.text_max)
    recovery = Recovery(db.history, rooms, connections)
    watch = Watch(presence, connections, rooms, db.rooms)
    profile = Profile(accounts, db.rooms, broker)
    _controls(fanout, connections)
    # Every event spends its row of the limit table first (an event without one: no start).
    events = SocketApi(messaging, rooms, recovery, watch, profile).events()
    sockets.serve(connections, limiter.guard(events))
    rest = Rest(
        accounts, profile, messaging, rooms, recovery, db.history, presence.online,
        token_ttl=s.token_ttl, cookie_secure=s.cookie_secure, trusted_proxies=s.trusted_proxies,
        limiter=limiter, sessions=sessions,
    )  # fmt: skip
    check_rows(rest.routes(), limiter)  # a signed-in route without a limit row: no start
    node = Node(s, sockets, broker, db.cluster, hasher, order, presence, rest, fanout)
    node.render_metrics = metrics.exporter(
        metrics.node_collector(
            presence, order, broker.status, fanout, messaging, lambda: broker.local_deliveries
        )
    )
    return node


def _baselines(room_store: ClusterRooms, history: ClusterHistory) -> Baselines:
    """Last seqs of the rooms whose messages travel on a channel: its room, or, for a
    user's channel, the user's DM rooms."""

    async def baselines(channel: str) -> dict[str, int]:
        kind, ident = channels.channel_entity(channel)
        if kind == "room":
            return await history.last_seqs([ident])
        dms = [r for r in await room_store.user_rooms(ident) if is_dm_room(r)]
        return await history.last_seqs(dms)

    return baselines


def _controls(fanout: Fanout, connections: Connections) -> None:
    async def revoke(channel: str, data: Any) -> None:
        """A token, a sign-in or a generation of the user's tokens ended (core/sessions.py)."""
        _, user_id = channels.channel_entity(channel)
        await connections.lifetimes.revoke(connections.local(user_id), data)

    async def room_added(channel: str, data: Any) -> None:
        await connections.room_added(data["user"]["id"], data["room"], data)

    async def room_removed(channel: str, data: Any) -> None:
        await connections.room_removed(data["user"]["id"], data["room"], data)

    async def renamed(channel: str, data: Any) -> None:
        await connections.renamed(str(data["id"]), str(data["name"]))

    fanout.on_control("revoke", revoke)
    fanout.on_control("room_added", room_added)
    fanout.on_control("room_removed", room_removed)
    fanout.on_control("renamed", renamed)


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
        # metrics listener (run) does.
        app.add_routes([metrics_route(node.render_metrics, settings.metrics_token)])
    app.add_routes(node.rest.routes())
    app.add_routes(web_routes())
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_sockets)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    try:
        await node.cluster.start(START_TIMEOUT)
        await node.broker.start(START_TIMEOUT)
        await node.presence.start()
        node.sockets.connections.lifetimes.start()
        log.info("node %s started", node.settings.node_id)
        yield
    finally:
        # Runs on a failed start too: nothing may be left running.
        node.draining = True
        await node.sockets.connections.lifetimes.stop()
        await node.presence.stop()
        await node.broker.stop()
        await node.fanout.close()
        await node.ordering.close()
        await node.cluster.stop()
        node.hasher.close()
        await node.sockets.sio.shutdown()
        log.info("node %s stopped", node.settings.node_id)


async def _close_sockets(app: web.Application) -> None:
    """Let sends in progress finish, then drop every connection; clients reconnect to
    another node (and retry what was refused, with the same ``cid``)."""
    node = app[NODE]
    node.draining = True
    budget = shutdown_budget(node.settings)
    await node.sockets.quiesce(timeout=budget["events"])
    closed = await node.sockets.close_all(timeout=budget["transports"])
    log.info("node %s closed %d sockets for shutdown", node.settings.node_id, closed)


async def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then leave gracefully, as Kubernetes expects.

    1. readiness fails at once (load balancers stop sending new clients);
    2. the node keeps serving for ``CHAT_DRAIN_SECONDS`` (requests already on their way);
    3. shutdown, within what is left of ``CHAT_SHUTDOWN_TIMEOUT``: the listener closes, sends
       in progress finish (acked, or refused as retriable), every transport is dropped so
       clients reconnect elsewhere, HTTP requests still running get a short grace, tasks are
       cancelled and awaited, pools closed.
    """
    running_loop.install()
    app = create_app(settings)
    budget = shutdown_budget(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=budget["http"]
    )
    try:
        await runner.setup()
    except RuntimeError as exc:  # Redis unreachable for START_TIMEOUT: say so, no traceback
        log.error("node %s could not start: %s", settings.node_id, exc)
        raise SystemExit(1) from None
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("node %s listening on %s:%d", settings.node_id, settings.host, settings.port)
        render = app[NODE].render_metrics or (lambda: b"")
        metrics = await start_metrics_listener(
            render, settings.metrics_token, settings.host, settings.metrics_port
        )
        try:
            await _until_stopped(app[NODE])
        finally:
            if metrics is not None:  # scraped through the drain, gone before the shutdown
                await metrics.cleanup()
    finally:
        await runner.cleanup()


async def _until_stopped(node: Node) -> None:
    """Wait for SIGTERM/SIGINT, then drain: readiness fails at once, and requests already on
    their way are still served for ``CHAT_DRAIN_SECONDS``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    node.draining = True
    log.info("node %s draining for %.1f s", node.settings.node_id, node.settings.drain_seconds)
    await asyncio.sleep(node.settings.drain_seconds)


def shutdown_budget(settings: Settings) -> dict[str, float]:
    """Split what the shutdown timeout leaves after the drain between its steps.

    aiohttp's own wait for running HTTP handlers must stay short: a connection accepted just
    as the listener closes has its request ignored and would otherwise hold the exit for the
    whole timeout.
    """
    rest = max(1.0, settings.shutdown_timeout - settings.drain_seconds)
    return {"events": rest * 0.35, "transports": rest * 0.25, "http": rest * 0.3}

"""Composition root: picks the concrete classes and wires them (``wiring.py``); nothing else.

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
from typing import Any

from aiohttp import web

from chat import wiring
from chat.adapters import metrics
from chat.adapters.cluster.client import Cluster
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
from chat.adapters.rest import Rest
from chat.adapters.shards.broker import ShardedBroker
from chat.adapters.sio import SocketServer
from chat.config import Settings
from chat.core.inbound import InboundDispatcher
from chat.core.lifetime import Lifetimes
from chat.core.ordering import Ordering
from chat.core.passwords import PasswordHasher
from chat.core.presence import Presence
from chat.core.shardset import Follower

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


def build_node(s: Settings) -> Node:
    """Wire the node: adapters first, then the use cases over them (see docs/architecture.md)."""
    db = wiring.storage(s)
    t = wiring.transport(s, db)
    hasher = PasswordHasher(
        workers=s.hash_workers, hash_workers=s.hash_register_workers,
        hash_waiting=s.hash_register_queue,
    )  # fmt: skip
    served = wiring.use_cases(s, db, t, hasher)
    follower = Follower(ClusterShardSet(db.cluster), t.broker, s.node_id, s.shard_urls)
    node = Node(
        s, t.sockets, t.broker, db.cluster, hasher, t.order, served.presence, served.rest,
        t.inbound, served.connections.lifetimes, follower,
    )  # fmt: skip
    broker = t.broker
    node.render_metrics = metrics.exporter(
        metrics.node_collector(
            served.presence,
            t.order,
            broker.status,
            t.inbound,
            served.messaging,
            lambda: broker.local_deliveries,
            lambda: broker.layout.step,
            lambda: node.cluster_ok,
        ),
        t.latencies,
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

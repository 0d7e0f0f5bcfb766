"""Composition root: picks the concrete classes, wires them, and owns their lifecycles.

Start order: cluster client, then the shard listeners; the node reports ready only when every
shard is connected with all its channels subscribed and the cluster answers.  Stop order is the
reverse, after the sockets were closed: every task is cancelled and awaited, every pool closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chat.adapters.cluster_store import ClusterStore
from chat.adapters.http import health_routes
from chat.adapters.sharded_broker import ShardedBroker
from chat.adapters.sio import SocketServer
from chat.config import Settings
from chat.core.api import SocketApi
from chat.core.connections import Connections
from chat.core.fanout import Fanout
from chat.core.messaging import Messaging
from chat.core.tokens import TokenService

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


@dataclass
class Node:
    settings: Settings
    sockets: SocketServer
    broker: ShardedBroker
    store: ClusterStore
    tokens: TokenService
    draining: bool = field(default=False)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        shards = self.broker.status()
        cluster_ok = await self.store.healthy()
        ready = not self.draining and self.broker.is_ready() and cluster_ok
        detail = {"node": self.settings.node_id, "draining": self.draining}
        return ready, {**detail, "shards": shards, "cluster": cluster_ok}


NODE = web.AppKey("node", Node)


def build_node(settings: Settings) -> Node:
    sockets = SocketServer(origins=settings.origins, max_payload=settings.max_payload)
    fanout = Fanout(sockets)
    broker = ShardedBroker(
        settings.shard_urls,
        fanout,
        node_id=settings.node_id,
        subscribe_timeout=settings.subscribe_timeout,
    )
    store = ClusterStore(settings.cluster, node_id=settings.node_id)
    tokens = TokenService(
        signing_key=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        algorithm=settings.jwt_algorithm,
        ttl=settings.token_ttl,
    )
    messaging = Messaging(broker, store, text_max=settings.text_max)
    sockets.serve(Connections(tokens, broker), SocketApi(messaging).events())
    return Node(settings=settings, sockets=sockets, broker=broker, store=store, tokens=tokens)


def create_app(settings: Settings) -> web.Application:
    node = build_node(settings)
    app = web.Application(client_max_size=settings.max_payload)
    app[NODE] = node
    node.sockets.attach(app)
    app.add_routes(health_routes(node.readiness))
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_close_sockets)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    try:
        await node.store.start(START_TIMEOUT)
        await node.broker.start(START_TIMEOUT)
        log.info("node %s started", node.settings.node_id)
        yield
    finally:
        # Runs on a failed start too: nothing may be left running.
        node.draining = True
        await node.broker.stop()
        await node.store.stop()
        await node.sockets.sio.shutdown()
        log.info("node %s stopped", node.settings.node_id)


async def _close_sockets(app: web.Application) -> None:
    """Stop being ready and close every socket at the Engine.IO level, which clients treat
    as a lost transport: they reconnect (through the load balancer, to another node)."""
    node = app[NODE]
    node.draining = True
    closed = await node.sockets.close_all()
    log.info("node %s closed %d sockets for shutdown", node.settings.node_id, closed)

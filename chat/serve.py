"""Serving one node until it is told to stop, then leaving gracefully, as Kubernetes expects.

1. readiness fails at once (load balancers stop sending new clients);
2. the node keeps serving for ``CHAT_DRAIN_SECONDS`` (requests already on their way);
3. shutdown, within what is left of ``CHAT_SHUTDOWN_TIMEOUT``: the listener closes, sends in
   progress finish (acked, or refused as retriable), every transport is dropped so clients
   reconnect elsewhere, HTTP requests still running get a short grace, then the resources
   (``app.py``'s cleanup contexts) stop in reverse order of their start.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from chat.adapters import running_loop
from chat.adapters.http import start_metrics_listener
from chat.app import NODE, Node, create_app
from chat.config import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT (see the module docstring)."""
    running_loop.install()
    app = create_app(settings)
    app.on_shutdown.append(close_sockets)
    budget = shutdown_budget(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=budget["http"]
    )
    try:
        await runner.setup()
    except Exception as exc:
        await runner.cleanup()  # stops what did start, in reverse
        if not isinstance(exc, RuntimeError):
            raise
        # Redis unreachable for START_TIMEOUT: say so, no traceback.
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


async def close_sockets(app: web.Application) -> None:
    """Let sends in progress finish, then drop every connection; clients reconnect to
    another node (and retry what was refused, with the same ``cid``)."""
    node = app[NODE]
    node.draining = True
    budget = shutdown_budget(node.settings)
    await node.sockets.quiesce(timeout=budget["events"])
    closed = await node.sockets.close_all(timeout=budget["transports"])
    log.info("node %s closed %d sockets for shutdown", node.settings.node_id, closed)


def shutdown_budget(settings: Settings) -> dict[str, float]:
    """Split what the shutdown timeout leaves after the drain between its steps.

    aiohttp's own wait for running HTTP handlers must stay short: a connection accepted just
    as the listener closes has its request ignored and would otherwise hold the exit for the
    whole timeout.
    """
    rest = max(1.0, settings.shutdown_timeout - settings.drain_seconds)
    return {"events": rest * 0.35, "transports": rest * 0.25, "http": rest * 0.3}

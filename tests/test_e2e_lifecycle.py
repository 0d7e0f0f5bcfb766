"""Node lifecycle: readiness, and SIGTERM closing sockets so that clients reconnect elsewhere."""

from __future__ import annotations

import asyncio

import pytest
import socketio
from stack import register, start_stack


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_sigterm_closes_sockets_and_clients_reconnect_to_another_node(
    redis_fleet, tmp_path, jwt_secret, transport
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        user = await register(stack.url(1))
        sessions: asyncio.Queue[dict] = asyncio.Queue()
        reasons: asyncio.Queue[str] = asyncio.Queue()
        client = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
        client.on("session", sessions.put_nowait)
        client.on("disconnect", reasons.put_nowait)
        # The first URL serves the handshake; reconnects go to the same URL, so point the
        # client at node0 and move it by hand, as a load balancer would after node0 leaves.
        token = user.token
        await client.connect(stack.url(0), auth={"token": token}, transports=[transport])
        await asyncio.wait_for(sessions.get(), 10)

        exit_code = await asyncio.to_thread(stack.nodes[0].stop)

        assert exit_code == 0
        reason = await asyncio.wait_for(reasons.get(), 10)
        # A lost transport, after which clients retry; not "server disconnect", after which
        # they would stay away.
        assert reason == client.reason.TRANSPORT_ERROR
        await client.disconnect()
        await client.connect(stack.url(1), auth={"token": token}, transports=[transport])
        assert (await asyncio.wait_for(sessions.get(), 10))["user"]["id"] == user.id
        ack = await client.call("dm", {"to": user.id, "text": "back"}, timeout=10)
        assert ack["ok"] is True
        await client.disconnect()

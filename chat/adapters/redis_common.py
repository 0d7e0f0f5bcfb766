"""Connection settings shared by every Redis client of the node.

redis-py >= 7.2 looks up its own version with ``importlib.metadata`` for every new connection
unless it is given a ``DriverInfo``; one built here once keeps connects cheap (and tells
operators in ``CLIENT LIST`` which program a connection belongs to).
"""

from __future__ import annotations

import socket
from typing import Any

from redis.backoff import EqualJitterBackoff
from redis.driver_info import DriverInfo
from redis.maint_notifications import MaintNotificationsConfig

DRIVER = DriverInfo(name="chat", lib_version="1")

# Dead peers (a pulled cable, a frozen VM) are noticed by the kernel within
# idle + interval * count = 5 + 2 * 3 = 11 s even when the application sends nothing.
KEEPALIVE: dict[int, int | bytes] = {}
for _opt, _value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
    if hasattr(socket, _opt):
        KEEPALIVE[getattr(socket, _opt)] = _value


#: How long one batch of commands may take before its connection counts as dead.
COMMAND_TIMEOUT = 5.0


def connection_kwargs(client_name: str, *, per_command_timeout: bool = True) -> dict[str, Any]:
    """``per_command_timeout=False`` for the busy clients, which bound a whole batch with one
    timeout instead: redis-py wraps every write in ``asyncio.wait_for`` (a task each) and every
    read in a timeout context when ``socket_timeout`` is set, a cost paid per command."""
    return {
        "socket_connect_timeout": 2.0,
        "socket_timeout": COMMAND_TIMEOUT if per_command_timeout else None,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE,
        "client_name": client_name,
        "driver_info": DRIVER,
        # RESP3 (redis-py's default) delivers pub/sub traffic as push messages.
        "protocol": 3,
        # Managed-Redis maintenance push notifications: unknown to Valkey and open-source
        # Redis, and probing for them costs a round trip per new connection.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }


def reconnect_backoff() -> EqualJitterBackoff:
    """Jittered exponential backoff, 50 ms doubling up to a 2 s cap."""
    return EqualJitterBackoff(cap=2.0, base=0.05)

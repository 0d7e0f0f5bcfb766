"""Connection settings shared by every Redis client of the node.

redis-py >= 7.2 looks up its own version with ``importlib.metadata`` for every new connection
unless it is given a ``DriverInfo``; one built here once keeps connects cheap (and tells
operators in ``CLIENT LIST`` which program a connection belongs to).

Credentials and TLS (``RedisAccess``) are connection arguments too: redis-py authenticates
each new connection with ``HELLO 3 AUTH`` and builds its TLS context per connection (the CA
file is read then), which is why no connection is ever opened per request.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import hiredis
from redis.backoff import EqualJitterBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import AuthenticationError, DataError
from redis.maint_notifications import MaintNotificationsConfig

from chat.config import Settings

DRIVER = DriverInfo(name="chat", lib_version="1")

# Dead peers (a pulled cable, a frozen VM) are noticed by the kernel within
# idle + interval * count = 5 + 2 * 3 = 11 s even when the application sends nothing.
KEEPALIVE: dict[int, int | bytes] = {}
for _opt, _value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
    if hasattr(socket, _opt):
        KEEPALIVE[getattr(socket, _opt)] = _value


#: How long one batch of commands may take before its connection counts as dead.
COMMAND_TIMEOUT = 5.0


def pack(commands: Iterable[Sequence[Any]]) -> bytes:
    """Commands in RESP, for ``send_packed_command``: hiredis's ``pack_command`` on each, the
    same bytes redis-py's ``pack_commands`` makes (str as UTF-8, numbers by ``repr``, bool
    refused) without its Python work per argument (a generator and an encoder call each:
    about a tenth of a node's function calls under the dm benchmark).  Command names are
    single words here, which redis-py would otherwise split at spaces."""
    try:
        return b"".join([hiredis.pack_command(tuple(command)) for command in commands])
    except TypeError as exc:
        raise DataError(str(exc)) from None


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


@dataclass(frozen=True)
class RedisAccess:
    """Credentials and TLS files for one Redis deployment (the shards, or the cluster).

    The password never appears in ``repr`` (nor does redis-py put it in its messages or its
    connections' ``repr``).  TLS is on for a shard whose URL is ``rediss://`` and for the
    cluster when ``tls`` is set; the server certificate is always verified, against
    ``ca_file`` or else the system's CAs, host name included.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def kwargs(self, *, tls: bool) -> dict[str, Any]:
        """redis-py connection arguments; ``tls`` only for a TLS connection class (a plain one
        refuses the ``ssl_*`` arguments)."""
        # No username: redis-py authenticates as the ``default`` user (plain requirepass).
        out: dict[str, Any] = {
            "username": self.username or None,
            "password": self.password or None,
        }
        if tls:
            out.update(
                ssl_cert_reqs="required",
                ssl_check_hostname=True,
                ssl_ca_certs=self.ca_file or None,
                ssl_certfile=self.cert_file or None,
                ssl_keyfile=self.key_file or None,
            )
        return out

    def url_kwargs(self, url: str) -> dict[str, Any]:
        """For a shard: TLS where its URL says ``rediss://``."""
        return self.kwargs(tls=url.lower().startswith("rediss://"))


def redis_access(settings: Settings, target: Literal["shards", "cluster"]) -> RedisAccess:
    """The access of the shards or the cluster: their own user and password where set,
    else the common ``CHAT_REDIS_*`` ones."""
    own_user, own_password = (
        (settings.shards_username, settings.shards_password)
        if target == "shards"
        else (settings.cluster_username, settings.cluster_password)
    )
    return RedisAccess(
        username=own_user or settings.redis_username,
        password=own_password or settings.redis_password,
        tls=settings.cluster_tls if target == "cluster" else False,
        ca_file=settings.redis_ca_file,
        cert_file=settings.redis_cert_file,
        key_file=settings.redis_key_file,
    )


def refusal(exc: BaseException) -> tuple[str, str] | None:
    """What refused us for good behind ``exc`` (redis-py wraps causes), as (what, why): a
    wrong or missing password, or a server certificate we do not trust.  Waiting mends
    neither, so the start-up reports them at once.  ``why`` is the server's or OpenSSL's
    message (WRONGPASS, NOAUTH, "certificate verify failed"): it never holds the password."""
    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk: exception chains can be cyclic
        if isinstance(seen, AuthenticationError):
            return "authentication", str(seen).rstrip(".")
        if isinstance(seen, ssl.SSLCertVerificationError):
            return "TLS verification", str(seen.verify_message)
        if seen is None:
            return None
        seen = seen.__cause__ or seen.__context__
    return None

"""A local fleet: N standalone pub/sub shards plus a Redis Cluster, for ``python -m devstack``
and tests.

Imports the stdlib, redis-py and the other :mod:`devstack` modules.  Everything is
started concurrently (spawn all, then wait), stopped in parallel, and stopped at interpreter
exit as a safety net.

Layout of ``data_dir``: ``shards/shard<i>/`` and ``cluster/node<i>/`` (server.log, nodes.conf,
appendonlydir/), ``cluster/cli.log`` (valkey-cli output) and ``fleet.json`` (the ports, so a
persistent cluster comes back on the ports recorded in its nodes.conf files).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from redis.crc import key_slot

from devstack.cluster_cli import ClusterCli, node_id
from devstack.net import PortSpec, fleet_ports, pick_free_ports, port_list
from devstack.procs import stop_all
from devstack.redis_client import (
    Access,
    LocalRedisError,
    TlsFiles,
    cluster_problem,
    members_problem,
    node_role,
    slot_owner,
)
from devstack.redis_server import (
    RedisBinaries,
    RedisProcess,
    RedisStartError,
    find_redis_binaries,
)


class RedisFleet:
    """``shards`` pub/sub servers (shard0..) + a cluster of ``masters`` x (1 + ``replicas``).

    ``node_timeout_ms`` (cluster-node-timeout) defaults to 2000 ms so a killed master is
    failed over within a few seconds in tests and the dev stack; production uses ~15000.
    ``persistent=False`` runs in a temp dir (inside ``data_dir`` if given) removed on stop;
    ``persistent=True`` needs ``data_dir``, keeps it and enables the AOF on cluster nodes.
    Shards never persist: they carry pub/sub only.  ``username``/``password``: every server
    requires them (an ACL user, or ``requirepass`` without a username); ``tls``: every server
    speaks TLS only (needs a server built with TLS, see devstack.tls).
    """

    def __init__(
        self,
        *,
        shards: int = 3,
        masters: int = 3,
        replicas: int = 1,
        data_dir: Path | str | None = None,
        persistent: bool = False,
        shard_ports: PortSpec = None,
        cluster_ports: PortSpec = None,
        host: str = "127.0.0.1",
        node_timeout_ms: int = 2000,
        binaries: RedisBinaries | None = None,
        timeout: float = 30.0,
        username: str = "",
        password: str = "",
        tls: TlsFiles | None = None,
    ) -> None:
        if masters and masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters (or masters=0 for none)")
        if persistent and data_dir is None:
            raise ValueError("persistent=True needs a data_dir")
        self.host, self.persistent, self.timeout = host, persistent, timeout
        self.node_timeout_ms = node_timeout_ms
        self.n_shards, self.masters_count, self.replicas_per_master = shards, masters, replicas
        self._data_dir_arg = Path(data_dir) if data_dir is not None else None
        self._shard_spec = port_list(shard_ports, shards)
        self._cluster_spec = port_list(cluster_ports, masters * (1 + replicas))
        self._binaries = binaries
        self.access = Access(username, password, tls)
        self._tempdir: Path | None = None
        self.data_dir: Path | None = None
        self.shards: list[RedisProcess] = []
        self.cluster: list[RedisProcess] = []
        self.cluster_created = False  # True if start() ran `--cluster create`
        self.start_seconds: float | None = None

    def __enter__(self) -> RedisFleet:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ app-facing addresses

    @property
    def shard_urls(self) -> dict[str, str]:
        return {p.name: p.url for p in self.shards}

    @property
    def shards_env(self) -> str:
        """CHAT_SHARDS format: ``shard0=redis://127.0.0.1:p0,shard1=...``."""
        return ",".join(f"{name}={url}" for name, url in self.shard_urls.items())

    @property
    def cluster_nodes(self) -> list[str]:
        return [p.address for p in self.cluster]

    @property
    def cluster_env(self) -> str:
        """CHAT_CLUSTER format: ``127.0.0.1:p,127.0.0.1:q,...``."""
        return ",".join(self.cluster_nodes)

    def node_options(self) -> dict[str, str]:
        """Settings a chat node needs to reach this fleet (passwords, TLS), as option names."""
        return self.access.node_options()

    def processes(self) -> list[RedisProcess]:
        return self.shards + self.cluster

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RedisFleet:
        if any(p.alive for p in self.processes()):
            raise LocalRedisError("fleet already running; stop() it first")
        began = time.monotonic()
        atexit.register(self.stop)
        try:  # BaseException: a Ctrl-C halfway through start must not leak servers
            self._build()
            for proc in self.processes():
                proc.spawn()
            for proc in self.processes():
                proc.wait_ready(max(began + self.timeout - time.monotonic(), 1.0))
            if self.cluster:
                self._form_cluster(began + self.timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop everything in parallel (SIGTERM, SIGKILL after ``timeout``); idempotent."""
        atexit.unregister(self.stop)
        stop_all(self.processes(), timeout)
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def _build(self) -> None:
        binaries = self._binaries or find_redis_binaries()
        root = self._root_dir()
        shard_ports, cluster_ports = fleet_ports(
            root / "fleet.json" if self.persistent else None,
            self._shard_spec,
            self._cluster_spec,
            shards=self.n_shards,
            nodes=self.masters_count * (1 + self.replicas_per_master),
            host=self.host,
        )
        self.shards = [
            RedisProcess(
                binaries,
                port,
                root / "shards" / f"shard{i}",
                host=self.host,
                name=f"shard{i}",
                access=self.access,
            )
            for i, port in enumerate(shard_ports)
        ]
        self.cluster = [
            self._cluster_node(binaries, i, port) for i, port in enumerate(cluster_ports)
        ]

    def _cluster_node(self, binaries: RedisBinaries, index: int, port: int) -> RedisProcess:
        assert self.data_dir is not None
        node_args = [
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(self.node_timeout_ms)),
            # Default 5 s: replicas would idle that long before their first full sync.
            *("--repl-diskless-sync-delay", "0"),
        ]
        return RedisProcess(
            binaries,
            port,
            self.data_dir / "cluster" / f"node{index}",
            host=self.host,
            persistent=self.persistent,
            args=node_args,
            name=f"node{index}",
            access=self.access,
        )

    def _root_dir(self) -> Path:
        if self.persistent and self._data_dir_arg is not None:
            root = self._data_dir_arg
            root.mkdir(parents=True, exist_ok=True)
        else:
            if self._data_dir_arg is not None:
                self._data_dir_arg.mkdir(parents=True, exist_ok=True)
            root = self._tempdir = Path(
                tempfile.mkdtemp(prefix="chat-redis-", dir=self._data_dir_arg)
            )
        self.data_dir = root.resolve()
        return self.data_dir

    # ------------------------------------------------------------------ cluster

    def _form_cluster(self, deadline: float) -> None:
        infos = [p.command("CLUSTER INFO") for p in self.cluster]  # one arg: parsed to a dict
        known = {info.get("cluster_known_nodes") for info in infos}
        if known == {"1"} and all(i.get("cluster_slots_assigned") == "0" for i in infos):
            self._create_cluster(deadline)
        elif known != {str(len(self.cluster))}:
            raise RedisStartError(
                f"{self.data_dir} holds a partial cluster (nodes know {sorted(map(str, known))} "
                "nodes); remove the directory to start afresh"
            )
        # else: a persistent cluster restarted from its nodes.conf files; no re-create
        self.wait_cluster_ok(max(deadline - time.monotonic(), 1.0))

    def _create_cluster(self, deadline: float) -> None:
        self._cli().create(self.cluster_nodes, self.replicas_per_master, deadline)
        self.cluster_created = True

    def _cli(self) -> ClusterCli:
        assert self.data_dir is not None
        return ClusterCli(
            self.cluster[0].binaries.cli, self.access, self.data_dir / "cluster" / "cli.log"
        )

    def _live_cluster(self) -> list[RedisProcess]:
        return [p for p in self.cluster if p.alive and not p.paused]

    def _cluster_problem(self) -> str | None:
        live = [(p.host, p.port) for p in self._live_cluster()]
        if not live:
            return "no live cluster node"
        return cluster_problem(live, self.masters_count, self.access)

    def wait_cluster_ok(self, timeout: float = 30.0) -> None:
        """Wait until every live, unpaused node has cluster_state:ok and cluster_slots_ok:16384,
        every replica's master link is up, and all agree on which masters own which slots.

        After killing a master, the cluster itself promotes a replica once the master has been
        unreachable for cluster-node-timeout (plus a short election), so allow a few seconds.
        """
        self._wait_until(self._cluster_problem, time.monotonic() + timeout)

    def _wait_until(self, problem: Callable[[], str | None], deadline: float) -> None:
        """Poll ``problem()`` (a cluster offers no event to await) until it finds none."""
        while (found := problem()) is not None:
            if time.monotonic() > deadline:
                raise RedisStartError(f"cluster not ok in time: {found}")
            time.sleep(0.05)

    def masters(self) -> list[RedisProcess]:
        """Live cluster nodes that currently report ROLE master."""
        return [p for p in self._live_cluster() if node_role(p.host, p.port, p.access) == "master"]

    def replicas(self) -> list[RedisProcess]:
        return [p for p in self._live_cluster() if node_role(p.host, p.port, p.access) == "slave"]

    def master_for_key(self, key: str | bytes) -> RedisProcess:
        """The process currently serving ``key``'s slot, per the first node that answers."""
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        owner = slot_owner([(p.host, p.port) for p in self._live_cluster()], slot, self.access)
        if owner is None:
            raise LocalRedisError(f"no live cluster node knows the owner of {key!r}")
        return next(p for p in self.cluster if p.port == owner[1])

    def flushall(self) -> None:
        """FLUSHALL on every shard and every cluster master (replicas follow)."""
        for proc in [*self.shards, *self.masters()]:
            proc.command("FLUSHALL")

    # ------------------------------------------------------------------ growing and shrinking
    # What an operator does (docs/deploy.md), while clients keep using the cluster.  Not for a
    # persistent fleet: its fleet.json records the nodes it started with.

    def add_pair(self, timeout: float = 60.0) -> tuple[RedisProcess, RedisProcess]:
        """Start a master and a replica of it, join them to the cluster and move the master's
        even share of the slots to it from the other masters; returns (master, replica) once
        every node agrees on the new slot map and reports cluster_state:ok."""
        if self.persistent or not self.cluster:
            raise LocalRedisError("add_pair() needs a running, non-persistent cluster")
        deadline = time.monotonic() + timeout
        entry = self.masters()[0]
        busy = [port for p in self.processes() for port in (p.port, p.port + 10000)]
        ports = pick_free_ports(2, host=self.host, cluster_bus=True, exclude=busy)
        made = len(list((entry.data_dir.parent).glob("node*")))  # removed nodes' dirs stay
        master, replica = [
            self._cluster_node(entry.binaries, made + i, p) for i, p in enumerate(ports)
        ]
        self.cluster += [master, replica]  # from here on, stop() stops them
        for proc in (master, replica):
            proc.spawn()
        for proc in (master, replica):
            proc.wait_ready(max(deadline - time.monotonic(), 1.0))
        cli = self._cli()
        cli.add_master(master, entry, deadline)
        self._wait_members([p for p in self._live_cluster() if p is not replica], deadline)
        cli.add_replica(replica, master, entry, deadline)
        self._wait_members(self._live_cluster(), deadline)
        # Knowing every member is not yet knowing every slot's owner: until then the new
        # master answers CLUSTERDOWN, and the MIGRATEs of the fill fail against it.
        self.wait_cluster_ok(max(deadline - time.monotonic(), 1.0))
        cli.fill(master, entry, deadline)
        self.masters_count += 1
        self.wait_cluster_ok(max(deadline - time.monotonic(), 1.0))
        return master, replica

    def remove_pair(self, master: RedisProcess, timeout: float = 60.0) -> list[RedisProcess]:
        """Move every slot of ``master`` to the other masters, then make the cluster forget
        it and its replicas and stop them; returns the processes removed."""
        deadline = time.monotonic() + timeout
        gone = [*self.replicas_of(master), master]  # replicas first: one can't forget its master
        # Asked now: once slot-less, the master turns into a replica of the node that took its
        # last slot (replica migration), and its own replica may hang a few seconds meanwhile.
        ids = [node_id(p) for p in gone]
        entry = next(p for p in self.masters() if p is not master)
        cli = self._cli()
        cli.drain(master, entry, deadline)
        self.masters_count -= 1
        for node in ids:  # del-node only needs it to own no slot, which the drain saw to
            cli.delete(node, entry, deadline)
        stop_all(gone)
        self.cluster = [p for p in self.cluster if p not in gone]
        self._wait_members(self._live_cluster(), deadline)
        self.wait_cluster_ok(max(deadline - time.monotonic(), 1.0))
        return gone

    def replicas_of(self, master: RedisProcess) -> list[RedisProcess]:
        return [
            p
            for p in self.replicas()
            if int(p.command("INFO", "replication").get("master_port", 0)) == master.port
        ]

    def _wait_members(self, nodes: list[RedisProcess], deadline: float) -> None:
        """Wait until each of ``nodes`` knows exactly ``nodes`` (gossip spreads a meet or a
        forget in a few hundred ms; a reshard needs every node to know the target)."""
        addresses = [(p.host, p.port) for p in nodes]
        self._wait_until(lambda: members_problem(addresses, self.access), deadline)

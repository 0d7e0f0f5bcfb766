"""``GET /metrics``: Prometheus text, read at scrape time from the node's own counters.

The use cases keep plain numbers; this adapter turns them into metric families, so nothing
outside it depends on prometheus_client.  Process metrics (CPU, RSS, open files) come with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from chat.core.inbound import InboundDispatcher
from chat.core.messaging import Messaging
from chat.core.ordering import Ordering
from chat.core.presence import Presence

#: (name, help, read) for counters and gauges without labels.
Reading = tuple[str, str, Callable[[], float]]


class NodeCollector(Collector):
    def __init__(
        self,
        counters: list[Reading],
        gauges: list[Reading],
        labelled: Callable[[], dict[str, tuple[str, str, dict[str, float]]]],
    ) -> None:
        self._counters = counters
        self._gauges = gauges
        self._labelled = labelled

    def collect(self) -> Iterator[Metric]:
        for name, text, read in self._counters:
            yield CounterMetricFamily(name, text, value=read())
        for name, text, read in self._gauges:
            yield GaugeMetricFamily(name, text, value=read())
        for name, (kind, text, values) in self._labelled().items():
            family: Any = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, text, labels=[_label(name)]
            )
            for label, value in values.items():
                family.add_metric([label], value)
            yield family


#: The phases of a change of the shard set as a gauge's values (chat/adapters/shards/layout.py).
PHASE_CODES = {"steady": 0, "receive": 1, "publish": 2}


def node_collector(
    presence: Presence,
    order: Ordering,
    shards: Callable[[], dict[str, dict[str, Any]]],
    inbound: InboundDispatcher,
    messaging: Messaging,
    local_deliveries: Callable[[], int] = lambda: 0,
    shard_step: Callable[[], tuple[int, str]] = lambda: (0, "steady"),
    cluster_ok: Callable[[], float] = lambda: -1.0,
) -> NodeCollector:
    def labelled() -> dict[str, tuple[str, str, dict[str, float]]]:
        return _labelled(presence, shards())

    return NodeCollector(
        counters=[
            ("chat_messages_stored", "messages stored by this node", lambda: messaging.sent),
            (
                "chat_pubsub_received",
                "payloads delivered to this node's sockets (from the shards, or local)",
                lambda: inbound.received,
            ),
            (
                "chat_local_deliveries",
                "payloads for channels no other node follows, delivered here without Redis",
                local_deliveries,
            ),
            ("chat_gaps_filled", "messages read from history for a gap", lambda: order.gaps_filled),
            ("chat_duplicates_dropped", "already delivered messages", lambda: order.duplicates),
            ("chat_presence_purged_entries", "dead nodes' entries purged", lambda: presence.purged),
        ],
        gauges=[
            ("chat_connections", "sockets connected to this node", lambda: presence.connections),
            ("chat_online_users", "users online, fleet-wide", lambda: presence.online_users),
            (
                "chat_shardset_epoch",
                "epoch of the shard set this node runs",
                lambda: shard_step()[0],
            ),
            (
                "chat_cluster_ok",
                "1: the Redis Cluster was ok at the last readiness check, 0: not, -1: none yet",
                cluster_ok,
            ),
            (
                "chat_shardset_phase",
                "phase of the shard set change this node runs: 0 steady, 1 receive, 2 publish",
                lambda: PHASE_CODES.get(shard_step()[1], -1),
            ),
        ],
        labelled=labelled,
    )


def _labelled(
    presence: Presence, status: dict[str, dict[str, Any]]
) -> dict[str, tuple[str, str, dict[str, float]]]:
    """The families with labels: presence transitions by state, the shards' figures by shard."""

    def per_shard(field: str) -> dict[str, float]:
        return {name: float(st[field]) for name, st in status.items()}

    return {
        "chat_presence_transitions": (
            "counter", "online/offline transitions announced by this node",
            {k: float(v) for k, v in presence.transitions.items()},
        ),
        "chat_shard_ready": ("gauge", "1: listener up, subscribed", per_shard("ready")),
        "chat_shard_channels": ("gauge", "channels followed", per_shard("channels")),
        "chat_shard_reconnects": ("counter", "listener reconnections", per_shard("reconnects")),
        "chat_shard_publish_failures": (
            "counter", "publish batches the shard did not take in time",
            per_shard("publish_failures"),
        ),
        "chat_shard_publish_backlog": (
            "gauge", "failed publishes kept for a retry", per_shard("publish_backlog"),
        ),
        "chat_shard_publish_dropped": (
            "counter", "failed publishes a full backlog could not keep",
            per_shard("publish_dropped"),
        ),
    }  # fmt: skip


def _label(name: str) -> str:
    return "shard" if "shard" in name else "state"


#: Seconds.  A durable write is one script plus a WAIT for a replica (bounded by its timeout).
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds.  A delivery may wait for a gap's hold and its fill from history.
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Latencies:
    """The node's latency histograms.  No labels: the hot path only observes a float."""

    def __init__(self) -> None:
        self.write = Histogram(
            "chat_durable_write_seconds",
            "latency of one durable history append (script and replica WAIT), per call",
            buckets=WRITE_BUCKETS, registry=None,
        )  # fmt: skip
        self.delivery = Histogram(
            "chat_delivery_latency_seconds",
            "room message latency from its server ts to its emit on this node",
            buckets=DELIVERY_BUCKETS, registry=None,
        )  # fmt: skip


def exporter(collector: NodeCollector, latencies: Latencies | None = None) -> Callable[[], bytes]:
    """The node's metrics and the process's, rendered in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessCollector(registry=None))
    registry.register(collector)
    if latencies is not None:
        registry.register(latencies.write)
        registry.register(latencies.delivery)
    return lambda: generate_latest(registry)

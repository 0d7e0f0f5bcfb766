"""The monitoring artifacts (k8s/monitoring/) against what a real node exports.

The Grafana dashboard and the alerting rules may name only metrics a node's /metrics really
serves (scraped here after a message went through); the rules pass ``promtool check rules``
and their unit tests (``promtool test rules``); the PodMonitor selects the chat pods and their
metrics port.  promtool comes with Debian's ``prometheus`` package: without it those tests
skip loudly.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sioclient import connected
from stack import register

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"
BASE = ROOT / "k8s" / "base"
RULES = MONITORING / "chat-rules.yml"
RULE_TESTS = MONITORING / "chat-rules.test.yml"
#: The metric names of a PromQL expression: the project's and the process collector's.
METRIC = re.compile(r"\b(?:chat|process)_[a-z0-9_]+")
PROMTOOL_HINT = "promtool is missing: `apt-get install -y prometheus` (Debian) provides it"


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for g in groups for rule in g["rules"]]


async def _scrape(stack: Any) -> str:
    """Node 0's /metrics after a DM between users on both nodes (a durable write there, a
    delivery on each node)."""
    ann, bob = await register(stack.url(0)), await register(stack.url(1))
    async with connected(stack.url(0), ann.token) as a, connected(stack.url(1), bob.token) as b:
        await a.next("session")
        await b.next("session")
        assert (await a.call("dm", {"to": bob.id, "text": "metrics"}))["ok"] is True
        await a.next("message")
        await b.next("message")
        async with (
            aiohttp.ClientSession() as http,
            http.get(stack.nodes[0].metrics_url + "/metrics") as resp,
        ):
            assert resp.status == 200
            return await resp.text()


async def test_dashboard_and_rules_name_only_exported_metrics(stack):
    text = await _scrape(stack)
    families = list(text_string_to_metric_families(text))
    samples = {s.name: s.value for f in families for s in f.samples}
    # The histograms of the write path and of delivery, observed by the DM above.
    assert samples["chat_durable_write_seconds_count"] >= 1
    assert samples["chat_delivery_latency_seconds_count"] >= 1
    assert 'chat_durable_write_seconds_bucket{le="+Inf"}' in text
    assert samples["chat_cluster_ok"] == 1.0  # the stack waited for /readyz
    exprs = _dashboard_exprs() + _rule_exprs()
    for expr in exprs:
        names = METRIC.findall(expr)
        assert names, f"names no metric: {expr}"
        unknown = [n for n in names if n not in samples]
        assert not unknown, f"{expr}: not exported by the node: {unknown}"
    # And the dashboard shows every family of the node's own.
    shown = {n for e in _dashboard_exprs() for n in METRIC.findall(e)}
    for family in families:
        # (``*_created``: the histograms' creation times, no panel's business.)
        if family.name.startswith("chat_") and not family.name.endswith("_created"):
            assert any(n.startswith(family.name) for n in shown), f"{family.name} not shown"


def test_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(PROMTOOL_HINT)
    return found


def test_promtool_checks_the_alerting_rules() -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {
        "ChatShardListenerDown",
        "ChatClusterNotOk",
        "ChatDurableWriteLatencyHigh",
        "ChatDeliveryGapsFilledRising",
    } <= alerts


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        check=False, cwd=MONITORING, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert tested == alerts, "every alert has a unit test"


def _load(path: Path, kind: str) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind)


def test_podmonitor_selects_the_chat_pods_metrics_port() -> None:
    monitor = _load(MONITORING / "podmonitor.yaml", "PodMonitor")
    deployment = _load(BASE / "chat" / "deployment.yaml", "Deployment")
    namespace = yaml.safe_load((BASE / "kustomization.yaml").read_text())["namespace"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == namespace
    spec = monitor["spec"]
    assert spec["namespaceSelector"]["matchNames"] == [namespace]
    pod = deployment["spec"]["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    # Only the chat pods: the selector is the Deployment's own.
    assert spec["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    annotated = int(pod["metadata"]["annotations"]["prometheus.io/port"])
    assert ports[endpoint["port"]] == annotated, "the scraped port is the metrics port"
    # A CRD the offline validation cannot check: kept out of the default kustomization.
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert not [r for r in listed if r.startswith("monitoring")]

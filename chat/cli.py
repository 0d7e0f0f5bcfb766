"""``chat`` command: ``serve`` a node, change the pub/sub ``shards``, manage service ``tokens``
for bots, delete ``users`` (and rebuild their name index), mint a ``token`` with the local
stack's secret.

The local stack itself is not part of the server: ``python -m devstack`` (``make run``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chat import config

#: Where ``python -m devstack`` keeps its state and the JWT secret it made (its DATA_DIR and
#: SECRET_FILE; tests/e2e/test_devstack.py checks they agree: chat does not import devstack).
DEV_DATA_DIR = Path(".data/dev")
DEV_SECRET_FILE = "jwt_secret"  # noqa: S105 - a file name, not a secret


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run one chat node",
        description="Run one chat node. Every flag can also be set by its CHAT_* variable; "
        "a flag wins over the variable.",
    )
    for opt in config.OPTIONS:
        default = "required" if opt.default is None else f"default {opt.default!r}"
        serve.add_argument(
            opt.flag,
            dest=opt.name,
            metavar=opt.name.upper(),
            help=f"{opt.help} [{opt.env}; {default}]",
        )


def _token_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="mint a token for an existing user with the dev secret")
    token.add_argument("--user", required=True, help="user id (the token's sub)")
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument("--data-dir", type=Path, default=DEV_DATA_DIR)


def _shards_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shards = sub.add_parser(
        "shards",
        help="show or change the pub/sub shard set (nodes follow it live)",
        description="Uses the CHAT_* settings of `chat serve`. Exit 0 done, 1 not done (the "
        "cluster unreachable, or the nodes did not all follow in time: `resume` continues), "
        "2 refused (nothing changed).",
    )
    shards.add_argument("--wait", type=float, default=60.0, help="seconds per step [60]")
    action = shards.add_subparsers(dest="action", required=True)
    action.add_parser("list", help="the recorded shard set")
    action.add_parser("status", help="epoch, phase, each node's step, channels per shard")
    add = action.add_parser("add", help="add a shard")
    add.add_argument("shard", metavar="NAME=URL")
    add.add_argument("--weight", type=int, default=1, help="its share of the ring, 1..100 [1]")
    action.add_parser("remove", help="remove a shard").add_argument("shard", metavar="NAME")
    action.add_parser("resume", help="finish a change that stopped half-way")


def _tokens_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser(
        "tokens",
        help="create, list or revoke service tokens (bots, backends)",
        description="Uses the CHAT_* settings of `chat serve`. Exit 0 done, 1 not done (the "
        "cluster unreachable; revoke: the sockets not told, run it again), 2 refused.",
    )
    action = tokens.add_subparsers(dest="action", required=True)
    create = action.add_parser(
        "create", help="a new token and its bot user; the token is printed once, on stdout"
    )
    create.add_argument("--name", required=True, help="the bot's display name")
    create.add_argument(
        "--scope", action="append", dest="scopes", default=[], choices=("bot", "admin"),
        help="bot (always); admin: the bot acts as an owner of every room",
    )  # fmt: skip
    action.add_parser("list", help="every token (never a secret)")
    revoke = action.add_parser("revoke", help="refuse the token at once, close its sockets")
    revoke.add_argument("id", help="the token's id (from `list`)")


def _users_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser(
        "users",
        help="delete an account; rebuild the name index of user search",
        description="Uses the CHAT_* settings of `chat serve`. Exit 0 done, 1 not done (the "
        "cluster or the shards unreachable: run it again), 2 no such user.",
    )
    action = users.add_subparsers(dest="action", required=True)
    delete = action.add_parser(
        "delete", help="delete an account as DELETE /api/me does (no password asked)"
    )
    delete.add_argument("user", metavar="USER_ID|EMAIL")
    action.add_parser(
        "reindex", help="index every user's display name for search; restore DM gates"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _shards_parser(sub)
    _tokens_parser(sub)
    _users_parser(sub)
    _token_parser(sub)
    return parser


def serve(overrides: dict[str, str | None]) -> int:
    # Imported here: `chat token` and `chat --help` need none of the server's dependencies.
    from chat import logs
    from chat.serve import run

    try:
        settings = config.load(overrides=overrides)
    except config.ConfigError as exc:
        print(f"chat serve: {exc}", file=sys.stderr)
        return 2
    secrets = tuple(getattr(settings, o.name) for o in config.OPTIONS if o.secret)
    logs.setup(settings.log_level, settings.log_json, settings.node_id, secrets)
    tune_gc()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run(settings))
    return 0


def shards(args: argparse.Namespace) -> int:
    from chat.admin import shards as run_shards

    try:
        settings = config.load(overrides={})
    except config.ConfigError as exc:
        print(f"chat shards: {exc}", file=sys.stderr)
        return 2
    shard, weight = getattr(args, "shard", None), getattr(args, "weight", 1)
    command = run_shards(settings, args.action, shard, wait=args.wait, weight=weight)
    return asyncio.run(command)


def service_tokens(args: argparse.Namespace) -> int:
    from chat.admin_tokens import tokens as run_tokens

    try:
        settings = config.load(overrides={})
    except config.ConfigError as exc:
        print(f"chat tokens: {exc}", file=sys.stderr)
        return 2
    command = run_tokens(
        settings, args.action, name=getattr(args, "name", ""),
        scopes=getattr(args, "scopes", []), token_id=getattr(args, "id", ""),
    )  # fmt: skip
    return asyncio.run(command)


def users(args: argparse.Namespace) -> int:
    from chat.admin import users as run_users

    try:
        settings = config.load(overrides={})
    except config.ConfigError as exc:
        print(f"chat users: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_users(settings, args.action, getattr(args, "user", None)))


def tune_gc() -> None:
    """What is alive after start-up (modules, configuration) lives as long as the process:
    frozen, the collector never scans it again.  A higher first threshold makes collections of
    the young generation rarer; each message allocates many short-lived objects that die by
    reference counting anyway."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): a faster event loop, same semantics."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def token(args: argparse.Namespace) -> int:
    from chat.core.tokens import TokenService

    secret_path = args.data_dir / DEV_SECRET_FILE
    secret = os.environ.get("CHAT_JWT_SECRET")
    if not secret:
        if not secret_path.exists():
            print(f"chat token: no {secret_path}; start `make run` first", file=sys.stderr)
            return 2
        secret = secret_path.read_text().strip()
    tokens = TokenService(
        signing_key=secret, issuer=os.environ.get("CHAT_JWT_ISSUER", "chat"), ttl=3600
    )
    print(tokens.issue(args.user, args.name or args.user)[0])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve({opt.name: getattr(args, opt.name) for opt in config.OPTIONS})
    if args.command == "shards":
        return shards(args)
    if args.command == "tokens":
        return service_tokens(args)
    if args.command == "users":
        return users(args)
    return token(args)


if __name__ == "__main__":
    sys.exit(main())

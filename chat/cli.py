"""``chat`` command: ``serve`` a node, run the local ``dev`` stack, mint a dev ``token``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chat import config

DEV_DATA_DIR = Path(".data/dev")


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


def _dev_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="run a local stack: Redis shards + cluster + chat nodes")
    dev.add_argument("--data-dir", type=Path, default=DEV_DATA_DIR, help="state kept between runs")
    dev.add_argument("--nodes", type=int, default=2, help="chat nodes to start (default 2)")
    dev.add_argument("--port", type=int, default=8001, help="port of the first chat node")
    dev.add_argument("--redis-port", type=int, default=7100, help="first Redis port")
    dev.add_argument(
        "--lb",
        action="store_true",
        help="also run nginx (from your OS packages) in front of the nodes, with sticky sessions",
    )
    dev.add_argument("--lb-port", type=int, default=8000, help="nginx's port (default 8000)")


def _token_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="mint a token for an existing user with the dev secret")
    token.add_argument("--user", required=True, help="user id (the token's sub)")
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument("--data-dir", type=Path, default=DEV_DATA_DIR)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _dev_parser(sub)
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
    from chat.dev import SECRET_FILE

    secret_path = args.data_dir / SECRET_FILE
    secret = os.environ.get("CHAT_JWT_SECRET")
    if not secret:
        if not secret_path.exists():
            print(f"chat token: no {secret_path}; start `chat dev` first", file=sys.stderr)
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
    if args.command == "token":
        return token(args)
    from chat.dev import run_dev

    return run_dev(
        args.data_dir,
        nodes=args.nodes,
        port=args.port,
        redis_port=args.redis_port,
        lb_port=args.lb_port if args.lb else None,
    )


if __name__ == "__main__":
    sys.exit(main())

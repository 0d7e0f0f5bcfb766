"""``python -m devstack [--lb]``: the local stack of ``make run`` / ``make run-lb``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devstack.run import run_dev

#: Where ``chat token`` looks by default too (chat/cli.py's DEV_DATA_DIR).
DATA_DIR = Path(".data/dev")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run a local stack: Redis shards + cluster + chat nodes.",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="state kept between runs")
    parser.add_argument("--nodes", type=int, default=2, help="chat nodes to start (default 2)")
    parser.add_argument("--port", type=int, default=8001, help="port of the first chat node")
    parser.add_argument("--redis-port", type=int, default=7100, help="first Redis port")
    parser.add_argument(
        "--lb",
        action="store_true",
        help="also run nginx (from your OS packages) in front of the nodes, with sticky sessions",
    )
    parser.add_argument("--lb-port", type=int, default=8000, help="nginx's port (default 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_dev(
        args.data_dir,
        nodes=args.nodes,
        port=args.port,
        redis_port=args.redis_port,
        lb_port=args.lb_port if args.lb else None,
    )


if __name__ == "__main__":
    sys.exit(main())

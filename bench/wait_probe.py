#!/usr/bin/env python3
"""How long a durable write's ``WAIT 1`` takes on a local 3 + 3 cluster (devstack), alone and
from several connections at once: SET + WAIT pipelined, 2 ms apart per connection.

    .venv/bin/python bench/wait_probe.py                        # a local fleet (devstack)
    .venv/bin/python bench/wait_probe.py --master HOST:PORT     # your own master (writes {probe}x)

Found on 2026-12-05 (2-core VM, valkey 8.1.8): alone p50 0.3 ms with a rare 40-45 ms outlier;
from 2 or 8 connections at once p50 2.7-3.5 ms. The cause: the replica's link to its primary
runs without TCP_NODELAY, so its REPLCONF ACK waits behind the previous one's delayed TCP
acknowledgement (docs/performance.md). Redis 7.0.15: 0.5 ms from 2 connections.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # devstack, from the checkout

import redis.asyncio as aioredis

from devstack.cluster import RedisFleet

KEY = "{probe}x"


async def probe(host: str, port: int, n: int = 600, wait: bool = True) -> str:
    client = aioredis.Redis(host=host, port=port, protocol=3)
    times = []
    for i in range(n):
        started = time.perf_counter()
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(KEY, i)
            if wait:
                pipe.execute_command("WAIT", 1, 1000)
            await pipe.execute()
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.002)  # the pace of one writer, not a synchronisation
    await client.aclose()
    times.sort()
    slow = sum(t > 30 for t in times)
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {times[-1]:.2f} ms, {slow} over 30 ms"


async def report(host: str, port: int) -> None:
    print("SET alone          ", await probe(host, port, wait=False))
    print("SET + WAIT alone   ", await probe(host, port))
    for writers in (2, 8):
        runs = [probe(host, port, n=300) for _ in range(writers)]
        for result in await asyncio.gather(*runs):
            print(f"SET + WAIT, {writers} conns", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--master",
        help="HOST:PORT of a master with a replica (in a cluster: the one serving {probe}x)",
    )
    args = parser.parse_args()
    if args.master:
        host, _, port = args.master.rpartition(":")
        asyncio.run(report(host, int(port)))
        return
    with RedisFleet(shards=0, masters=3, replicas=1) as fleet:
        master = fleet.master_for_key(KEY)
        asyncio.run(report(master.host, master.port))


if __name__ == "__main__":
    main()

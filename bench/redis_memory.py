"""`python -m bench.redis_memory`: what the Redis broker costs in Redis memory.

Starts a throwaway redis-server (or uses --redis-url, which it FLUSHALLs),
drives a real RedisBroker and prints INFO `used_memory` deltas:

* per connected client (presence member, online entry, connection entry, the
  instance's pub/sub subscription);
* per event kept in history (a typical notification, ~150 bytes of JSON);
* per event waiting in a store-and-forward queue (the frame plus its expiry).

Figures are printed, never asserted: they depend on the Redis version and
its encodings (small sets and streams are compact listpacks).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import AsyncExitStack

from redis.asyncio import Redis

from config.settings import Settings
from sse.broker import make_broker
from sse.events import Event
from sse.timestamps import utc_timestamp


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20, help="events published to each connected client")
    parser.add_argument("--queued-clients", type=int, default=2000)
    parser.add_argument("--redis-url", help="use this Redis (it is flushed!) instead of starting one")
    return parser.parse_args()


def start_redis() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("redis-server") or "redis-server"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir()],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return process, f"redis://127.0.0.1:{port}/0"


def notification(n: int) -> Event:
    return Event("notification", {"type": "notification", "title": "Order update", "message": f"Your order #{n} has shipped",
                                  "level": "info", "timestamp": utc_timestamp()})


async def used_memory(admin: Redis) -> int:
    return int((await admin.info("memory"))["used_memory"])


async def measure(url: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    admin = Redis.from_url(url)
    await admin.flushall()
    settings = Settings(_env_file=None, redis_url=url, instance_id="bench-host-12345", redis_timeout_seconds=10)
    broker = make_broker(settings)
    await broker.start()
    figures = []
    try:
        async with AsyncExitStack() as stack:
            before = await used_memory(admin)
            for n in range(args.clients):
                await stack.enter_async_context(broker.subscribe(f"user-{n:08d}", None))
            one_tab = await used_memory(admin)
            figures.append(("per connected client (1 stream)", (one_tab - before) / args.clients))
            for n in range(args.clients):
                await stack.enter_async_context(broker.subscribe(f"user-{n:08d}", None))
            connected = await used_memory(admin)
            figures.append(("per further stream of the same client", (connected - one_tab) / args.clients))
            for n in range(args.clients):
                await broker.publish(f"user-{n:08d}", notification(0))
            first = await used_memory(admin)
            figures.append(("first event of a client (new stream key)", (first - connected) / args.clients))
            for round_ in range(1, args.events):
                for n in range(args.clients):
                    await broker.publish(f"user-{n:08d}", notification(round_))
            stored = await used_memory(admin)
            figures.append(("per further event in history", (stored - first) / (args.clients * (args.events - 1))))
            figures.append((f"a client's whole history ({args.events} events)", (stored - connected) / args.clients))
            frame_size = len(notification(0).encode_data())
            figures.append(("  (JSON data of that event)", frame_size))
        disconnected = await used_memory(admin)
        for n in range(args.queued_clients):
            await broker.publish(f"offline-{n:08d}", notification(n), queue_if_offline=True)
        queued = await used_memory(admin)
        figures.append(("per queued event (own queue key)", (queued - disconnected) / args.queued_clients))
        for n in range(args.queued_clients):
            await broker.publish(f"offline-{n:08d}", notification(n), queue_if_offline=True)
        second = await used_memory(admin)
        figures.append(("per further queued event, same client", (second - queued) / args.queued_clients))
    finally:
        await broker.close()
        await admin.aclose()
    return figures


def main() -> None:
    args = parse_args()
    process, url = (None, args.redis_url) if args.redis_url else start_redis()
    try:
        figures = asyncio.run(measure(url, args))
    finally:
        if process is not None:
            process.terminate()
    print(f"Redis memory (used_memory deltas; {args.clients} clients, {args.events} events each, "
          f"{args.queued_clients} offline clients)")
    for label, value in figures:
        print(f"  {label:<40} {value:>8.0f} bytes")


if __name__ == "__main__":
    main()

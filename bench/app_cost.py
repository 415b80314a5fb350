"""`python -m bench.app_cost`: the application's own CPU per function call and per stream, without HTTP.

The unicast and hold rows time a call or a connect end to end: uvicorn, the
socket writes and our app together (`bench.http_floor` gives uvicorn's share).
This calls the ASGI app directly, in this process, with the same production
settings as the bench's server:

- calls: the same signed `redirectClient` requests, to idle streams whose
  socket write is replaced by a no-op (signature, parsing, validation, rate
  limits, redirect check, publishing, metrics, the answer);
- connects: the same stream requests (a JWT each, cross-origin), each counted
  once its opening frames are sent, then all ended by a disconnect (token,
  rate limits, CORS, registry, timers, the disconnect watcher, the opening).

`--profile` adds cProfile's top entries (cProfile roughly doubles the time it
measures; read its shares, not its times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import random
import time
from typing import AsyncIterator

import uvloop

from bench.calls import call_body, redirect_url
from bench.processes import SITE_ORIGIN, Secrets, ours_environment
from channel_app.app import create_app
from channel_app.garbage import settle_garbage_collector
from config.settings import Settings
from security.signature import decode_signing_key, sign
from security.tokens import mint_client_token

CLIENTS = 1_000
DISTINCT_REQUESTS = 500


def production_settings() -> Settings:
    environment = ours_environment(8000, Secrets())
    return Settings(_env_file=None, **{name.lower(): value for name, value in environment.items()})


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[None]:
    """The app's lifespan, driven as uvicorn drives it."""
    inbox: asyncio.Queue = asyncio.Queue()
    started = asyncio.Event()

    async def send(message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message", "startup failed"))

    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await started.wait()
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan


def call_requests(settings: Settings, client_ids: list[str]) -> list[tuple[dict, bytes]]:
    key = decode_signing_key(settings.channel_signing_key.get_secret_value())
    requests = []
    for seq in range(DISTINCT_REQUESTS):
        body = call_body("redirectClient", {"clientId": random.choice(client_ids), "url": redirect_url(seq)})
        headers = [
            (b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
            (b"x-signature", sign(body, key).encode()), (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT", "scheme": "http",
            "path": "/functions", "raw_path": b"/functions", "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
        }
        requests.append((scope, body))
    return requests


async def idle_streams(services, client_ids: list[str], stack: contextlib.AsyncExitStack) -> None:
    """One registered connection per client, its writer waiting idle, its socket a no-op."""

    async def keep_writing(connection) -> None:
        while await connection.next_frames() is not None:
            pass

    for client_id in client_ids:
        connection = await stack.enter_async_context(services.broker.registry.open(client_id))
        connection.write_now = lambda frame, counted: True
        writer = asyncio.create_task(keep_writing(connection))
        stack.callback(writer.cancel)
    await asyncio.sleep(0)  # every writer reaches its wait


async def measure(calls: int, profile: bool) -> None:
    settings = production_settings()
    app = create_app(settings)
    client_ids = [f"c{index}" for index in range(CLIENTS)]
    requests = call_requests(settings, client_ids)
    answers: list[dict] = []

    async def send(message) -> None:
        answers.append(message)

    async def call(count: int) -> None:
        for index in range(count):
            scope, body = requests[index % DISTINCT_REQUESTS]

            async def receive(body=body):
                return {"type": "http.request", "body": body, "more_body": False}

            await app(dict(scope), receive, send)

    async with running(app), contextlib.AsyncExitStack() as stack:
        await idle_streams(app.state.services, client_ids, stack)
        await call(2_000)  # warm-up: caches, first-use imports
        if not answers[-1].get("body", b"").startswith(b'{"result"'):
            raise SystemExit(f"calls are refused: {answers[-1]!r}")
        settle_garbage_collector()
        profiler = cProfile.Profile() if profile else None
        cpu = time.process_time()
        if profiler:
            profiler.enable()
        await call(calls)
        if profiler:
            profiler.disable()
        cpu = time.process_time() - cpu
    refused = sum(1 for message in answers if message.get("body", b"").startswith(b'{"error"'))
    if refused:
        raise SystemExit(f"{refused} calls were refused: the figure would not be a call's cost")
    print(f"{calls:,} calls: {cpu / calls * 1e6:.1f} us of the app's own CPU per call")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def stream_scope(client_id: str, token: str) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/sse/connect", "raw_path": b"/sse/connect", "root_path": "",
        "query_string": f"clientId={client_id}&token={token}".encode(),
        "headers": [
            (b"host", b"127.0.0.1:8000"), (b"accept", b"text/event-stream"), (b"cache-control", b"no-cache"),
            (b"origin", SITE_ORIGIN.encode()),
        ],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }


async def measure_connects(count: int, profile: bool) -> None:
    settings = production_settings()
    app = create_app(settings)
    secret = settings.client_jwt_secret.get_secret_value()
    scopes = [stream_scope(f"c{index}", mint_client_token(secret, f"c{index}", 3600)) for index in range(count)]
    leave = asyncio.get_running_loop().create_future()
    opened = 0
    all_open = asyncio.Event()

    async def receive():
        await asyncio.shield(leave)
        return {"type": "http.disconnect"}

    async def send(message) -> None:
        nonlocal opened
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"a stream was refused: {message!r}")
        if message["type"] == "http.response.body" and message.get("body"):
            opened += 1
            if opened == count:
                all_open.set()

    async with running(app):
        settle_garbage_collector()
        profiler = cProfile.Profile() if profile else None
        cpu = time.process_time()
        if profiler:
            profiler.enable()
        streams = [asyncio.create_task(app(scope, receive, send)) for scope in scopes]
        await all_open.wait()
        if profiler:
            profiler.disable()
        cpu = time.process_time() - cpu
        leave.set_result(None)
        await asyncio.gather(*streams)
    print(f"{count:,} streams: {cpu / count * 1e6:.1f} us of the app's own CPU per connect")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app_cost", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--connects", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    uvloop.run(measure(args.calls, args.profile))
    uvloop.run(measure_connects(args.connects, args.profile))


if __name__ == "__main__":
    main()

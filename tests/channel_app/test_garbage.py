"""The garbage policy (channel_app/garbage.py).

Freezing objects without walking them is safe only because this server makes
no reference cycles (pipelined requests left behind by a closed connection
used to: channel_app/http_protocol.py): reference counting frees everything it drops. The last
test holds a real server to that, over streams and requests of every kind; the
others check that the policy freezes, and that its thaw frees a cycle that
does form.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import threading
import time
import weakref

import pytest
import redis.exceptions

from channel_app.garbage import BLOCKS_PER_OPEN_STREAM, CHECK_EVERY_TICKS, GarbagePolicy
from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.server import run_server


class Node:
    pass


@pytest.fixture
def restored_collector():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.enable()


class HeapBlocks:
    """What the policy reads as the heap's size in blocks; starts at 1,000."""

    def __init__(self) -> None:
        self.value = 1_000

    def __call__(self) -> int:
        return self.value


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def a_cycle() -> weakref.ref:
    node = Node()
    node.itself = node
    return weakref.ref(node)


def ticks(policy: GarbagePolicy, clock: FakeClock, count: HeapBlocks, values: list[int]) -> None:
    """Ten ticks a check (CHECK_EVERY_TICKS), a check every ten seconds, the heap
    reading each of `values` in turn at the checks."""
    for value in values:
        count.value = value
        for _ in range(CHECK_EVERY_TICKS):
            clock.now += 1
            policy.tick()


@pytest.fixture
def policy_parts(monkeypatch):
    count, clock = HeapBlocks(), FakeClock()
    policy = GarbagePolicy(growth=2.0, heap_blocks=count, clock=clock)
    thaws: list[int] = []
    monkeypatch.setattr(policy, "thaw", lambda: thaws.append(count.value) or 0)
    return policy, clock, count, thaws


def test_a_tick_freezes_what_was_tracked_since_so_collections_skip_it(restored_collector) -> None:
    policy = GarbagePolicy()
    kept = [Node() for _ in range(1_000)]
    frozen_before = gc.get_freeze_count()

    policy.tick()

    assert gc.get_freeze_count() >= frozen_before + len(kept)
    assert gc.get_count()[0] < 100


def test_a_frozen_cycle_survives_collections_until_a_thaw_frees_it(restored_collector) -> None:
    count, clock = HeapBlocks(), FakeClock()
    policy = GarbagePolicy(growth=2.0, heap_blocks=count, clock=clock)
    alive = a_cycle()

    ticks(policy, clock, count, [400_000])
    gc.collect()
    assert alive() is not None  # frozen: no collection sees it

    ticks(policy, clock, count, [800_000] * 2)  # over the threshold and no longer growing
    assert alive() is None


def test_checking_the_heap_never_walks_the_frozen_objects(restored_collector) -> None:
    """Counting frozen objects visits every one of them (about 280 ms in a loaded
    server with 10,000 streams open), and no request is served while it runs."""
    policy = GarbagePolicy()
    builtins_called: list[object] = []

    def watch(frame, event, arg) -> None:
        if event == "c_call":
            builtins_called.append(arg)

    sys.setprofile(watch)
    try:
        for _ in range(CHECK_EVERY_TICKS * 3):
            policy.tick()
    finally:
        sys.setprofile(None)

    assert gc.freeze in builtins_called  # the watch sees the policy's calls
    assert gc.get_freeze_count not in builtins_called
    assert gc.get_objects not in builtins_called


def test_streams_coming_and_going_never_cause_a_full_collection(restored_collector, policy_parts) -> None:
    policy, clock, count, thaws = policy_parts

    ticks(policy, clock, count, [600_000, 799_999, 480_000, 796_000, 600_000] * 20)

    assert thaws == []


def test_a_storm_is_thawed_once_after_it_stops_growing_not_in_its_middle(restored_collector, policy_parts) -> None:
    policy, clock, count, thaws = policy_parts
    storm = [400_000, 1_600_000, 3_200_000, 4_800_000, 5_600_000]  # checks ten seconds apart while streams pour in

    ticks(policy, clock, count, storm)
    assert thaws == []
    ticks(policy, clock, count, [5_600_000])
    assert thaws == [5_600_000]

    ticks(policy, clock, count, [5_600_000] * 5)
    assert thaws == [5_600_000]  # the next thaw waits for twice what this one left


def test_growth_that_never_stops_is_thawed_a_minute_after_it_crossed_the_threshold(restored_collector, policy_parts) -> None:
    policy, clock, count, thaws = policy_parts

    ticks(policy, clock, count, [800_000 * 1.1**check for check in range(8)])  # 10 % more every check

    assert thaws == [800_000 * 1.1**6]  # the first check at least 60 s after the line was crossed


class OpenStreams:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


def storm_policy(monkeypatch) -> tuple[GarbagePolicy, FakeClock, HeapBlocks, OpenStreams, list[int]]:
    count, clock, streams = HeapBlocks(), FakeClock(), OpenStreams()
    count.value = 400_000  # what start-up leaves
    policy = GarbagePolicy(growth=2.0, heap_blocks=count, clock=clock, open_streams=streams)
    thaws: list[int] = []
    monkeypatch.setattr(policy, "thaw", lambda: thaws.append(count.value) or 0)
    return policy, clock, count, streams, thaws


STREAM_BLOCKS_IN_BENCH = 135  # estimated: see BLOCKS_PER_OPEN_STREAM


def test_a_storm_of_streams_alone_causes_no_full_collection(restored_collector, monkeypatch) -> None:
    """15,000 streams took the bench server's heap from about 400,000 blocks to 2.6
    million (at 147 blocks a stream then); collecting it all paused the server for
    over a second and found ~33 objects."""
    policy, clock, count, streams, thaws = storm_policy(monkeypatch)
    for opened in [2_000, 6_000, 10_000, 15_000] + [15_000] * 8:
        streams.value = opened
        ticks(policy, clock, count, [400_000 + opened * STREAM_BLOCKS_IN_BENCH])

    assert thaws == []


def test_garbage_growing_beside_open_streams_is_still_collected(restored_collector, monkeypatch) -> None:
    policy, clock, count, streams, thaws = storm_policy(monkeypatch)
    streams.value = 10_000
    held = 400_000 + 10_000 * STREAM_BLOCKS_IN_BENCH
    ticks(policy, clock, count, [held, held + 500_000, held + 1_000_000, held + 1_000_000])

    assert thaws == [held + 1_000_000]


def test_an_open_stream_holds_at_least_the_blocks_the_policy_counts_it_at(restored_collector) -> None:
    """Counted at more than it holds, a stream would let that much garbage hide."""

    def open_stream(port: int, client_id: str) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        stream = f"/sse/connect?clientId={client_id}&token={client_token(client_id)}"
        connection.sendall(http("GET", stream, headers={"Origin": "https://shop.example.com"}))
        received = b""
        while b"connected" not in received:
            received += connection.recv(65536)
        return connection

    app = make_app(cors_allowed_origins=["https://shop.example.com"], rate_limits_enabled=False)
    with run_server(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        for connection in [open_stream(port, f"warm-{index}") for index in range(20)]:
            connection.close()  # first use: imports and caches fill
        time.sleep(0.3)
        gc.collect()
        before = sys.getallocatedblocks()
        held = [open_stream(port, f"visitor-{index}") for index in range(300)]
        time.sleep(0.3)
        gc.collect()
        per_stream = (sys.getallocatedblocks() - before) / len(held)
        for connection in held:
            connection.close()

    assert per_stream >= BLOCKS_PER_OPEN_STREAM


def test_the_server_runs_upkeep_jobs_while_it_serves_and_cancels_them_when_it_stops() -> None:
    running, cancelled = threading.Event(), threading.Event()

    async def job() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with run_server(make_app(), upkeep=[job]):
        assert running.wait(5)
        assert not cancelled.is_set()
    assert cancelled.is_set()


def exchange(port: int, request: bytes, until: bytes | None = None) -> bytes:
    """One request on its own connection; reads to the end, or until `until` arrives (a stream)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        while until is None or until not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


SERVER_PACKAGES = ("channel_app", "sse", "security", "config", "uvicorn", "starlette", "sse_starlette")


def made_by_the_server(thing: object) -> bool:
    """Objects of our code or the HTTP stack, or code objects' frames and functions from them.
    Other garbage in this process (redis-py's refused handshake extras on a new pooled
    connection, pytest, other tests' leftovers) is not this server's and is ignored."""
    module = type(thing).__module__ or ""
    code = getattr(thing, "__code__", None) or getattr(thing, "f_code", None) or getattr(thing, "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return module.split(".")[0] in SERVER_PACKAGES or any(f"/{package}/" in filename for package in SERVER_PACKAGES)


def outside_redis_handshake_cycles(garbage: list) -> list:
    """`garbage` without what redis-py's refused handshake leaves behind. A Redis
    older than 7.2 refuses CLIENT SETINFO on each new pooled connection; the error
    it raises and catches keeps its frames, their `asyncio.timeout`, and through
    that the task that happened to open the connection: sometimes a request's
    task, whose uvicorn coroutine would otherwise count as this server's."""
    by_id = {id(thing): thing for thing in garbage}
    reached: set[int] = set()
    pending = [thing for thing in garbage if isinstance(thing, redis.exceptions.ResponseError)]
    while pending:
        thing = pending.pop()
        if id(thing) in reached:
            continue
        reached.add(id(thing))
        pending.extend(referent for referent in gc.get_referents(thing) if id(referent) in by_id)
    return [thing for thing in garbage if id(thing) not in reached]


def pipelined_then_gone(port: int, requests: int = 50) -> None:
    """Requests queued behind one another on a connection the client then closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * requests)


def http(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def every_kind_of_request() -> list[tuple[bytes, bytes | None]]:
    redirect = function_body("redirectClient", {"clientId": "visitor-1", "url": "https://shop.example.com/cart"})
    refused_url = function_body("redirectClient", {"clientId": "visitor-1", "url": "javascript:alert(1)"})
    unknown = function_body("noSuchMethod", {})
    stream = f"/sse/connect?clientId=visitor-1&token={client_token('visitor-1')}"
    return [
        (http("GET", stream, headers={"Origin": "https://shop.example.com"}), b"connected"),
        (http("PUT", "/functions", redirect, signed_headers(redirect)), None),
        (http("PUT", "/functions", refused_url, signed_headers(refused_url)), None),
        (http("PUT", "/functions", unknown, signed_headers(unknown)), None),
        (http("PUT", "/functions", redirect, {"X-Signature": "forged"}), None),
        (http("PUT", "/functions", b"{not json", signed_headers(b"{not json")), None),
        (http("GET", f"/sse/connect?clientId=visitor-2&token={client_token('visitor-1')}"), None),
        (http("GET", "/sse/connect?clientId=visitor-1&token=not-a-jwt"), None),
        (http("OPTIONS", "/sse/connect", headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "GET"}), None),
        (http("GET", "/sse/status"), None),
        (http("GET", "/widget.js"), None),
        (http("GET", "/nowhere"), None),
        (http("DELETE", "/functions"), None),
        (http("GET", "/healthz", headers={"X-Padding": "x" * 70_000}), None),
    ]


def test_streams_and_requests_of_every_kind_leave_no_reference_cycle_behind(restored_collector, backend) -> None:
    requests = every_kind_of_request()
    with run_server(make_app(cors_allowed_origins=["https://shop.example.com"], **backend)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        for request, until in requests:  # first use: imports and caches fill, which is not garbage
            exchange(port, request, until)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                for request, until in requests:
                    exchange(port, request, until)
                pipelined_then_gone(port)
            time.sleep(0.2)  # the server sees the last connections go
            answers = [exchange(port, request, until) for request, until in requests]
            gc.collect()
            ours = [thing for thing in outside_redis_handshake_cycles(gc.garbage) if made_by_the_server(thing)]
            kinds = sorted({type(thing).__qualname__ for thing in ours})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    statuses = [answer.split(b" ", 2)[1] for answer in answers]
    assert statuses == [b"200", b"200", b"200", b"200", b"401", b"400", b"403", b"401", b"200", b"200", b"200", b"404", b"405", b"431"]
    assert (len(ours), kinds) == (0, [])

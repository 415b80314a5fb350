"""Two real instances (subprocesses) on one real redis-server.

A visitor's stream lands on one instance and Channel's call on the other;
the answer must be true cluster-wide, survive an instance killed with SIGKILL
and a Redis restart, and one stuck visitor must not hold up another.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.apps import client_token
from tests.support.http import call_function, get_json, open_stream
from tests.support.instances import running_instances
from tests.support.scrape import scrape
from tests.support.waiting import eventually as poll_until

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture
def cluster(redis_url, tmp_path):
    with running_instances(redis_url, tmp_path) as (a, b):
        yield a, b


async def notify(base_url: str, client_id: str, message: str, **extra) -> dict:
    return await call_function(base_url, "notify", {"clientId": client_id, "message": message, **extra})


async def eventually(check, timeout: float = 15.0):
    """Instances are subprocesses: give them longer, and poll their HTTP endpoints less often."""
    return await poll_until(check, timeout, interval=0.1)


async def test_client_on_b_receives_a_call_made_on_a_and_a_counts_it(cluster):
    a, b = cluster
    async with open_stream(b.url, "visitor") as (on_b, connected):
        assert connected.data["instance"] == "b"
        result = (await notify(a.url, "visitor", "안녕하세요"))["result"]
        assert (result["delivered"], result["queued"]) == (1, False)
        event = await on_b.next_event()
        assert (event.id, event.data["message"]) == (result["eventId"], "안녕하세요")

        status = (await call_function(a.url, "getClientStatus", {"clientId": "visitor"}))["result"]
        assert (status["connected"], status["connections"]) == (True, 1)
        code, summary = await get_json(a.url, "/sse/status")
        assert (code, summary["connections"], summary["connected_clients"]) == (200, 1, 1)
        assert summary["broker"] == {"backend": "redis", "healthy": True}

        async with open_stream(a.url, "visitor") as (on_a, _):
            both = (await notify(b.url, "visitor", "two tabs"))["result"]
            assert both["delivered"] == 2
            assert (await on_a.next_event()).id == both["eventId"]
            assert (await on_b.next_event()).id == both["eventId"]
    await eventually(lambda: _connections(a.url, 0))


async def test_ack_posted_to_b_answers_the_call_waiting_on_a(cluster):
    a, b = cluster
    async with open_stream(b.url, "visitor") as (on_b, _):
        call = {"clientId": "visitor", "url": "https://shop.example.com/cart", "waitForAck": 5000}
        answer = asyncio.create_task(call_function(a.url, "redirectClient", call))
        event = await on_b.next_event()
        ack = {"clientId": "visitor", "eventId": event.id, "outcome": "done", "token": client_token("visitor")}
        async with httpx.AsyncClient(base_url=b.url) as http:
            assert (await http.post("/sse/ack", content=json.dumps(ack))).status_code == 204
        result = (await answer)["result"]
    assert (result["eventId"], result["acknowledged"], result["ackOutcome"]) == (event.id, True, "done")


async def test_sigkilled_instance_clients_resume_on_the_other_with_last_event_id(redis_url, tmp_path):
    heartbeat = 1.5
    with running_instances(redis_url, tmp_path, HEARTBEAT_SECONDS=str(heartbeat)) as (a, b):
        async with open_stream(b.url, "visitor") as (on_b, _):
            seen = (await notify(a.url, "visitor", "seen"))["result"]
            assert (await on_b.next_event()).id == seen["eventId"]
            b.kill()
            # B's presence is still live: the events wait for the reconnect, and the caller is told so.
            in_transit = [(await notify(a.url, "visitor", text))["result"] for text in ("two", "three")]
            with pytest.raises((httpx.HTTPError, EOFError)):
                await on_b.next_event(timeout=5)
        assert all(result["queued"] and result["delivered"] == 0 for result in in_transit)

        # Within two heartbeats B's clients disappear; a call now is truthfully refused.
        started = time.monotonic()
        await eventually(lambda: _connections(a.url, 0), timeout=4 * heartbeat)
        assert time.monotonic() - started <= 2 * heartbeat + 1
        refused = await notify(a.url, "visitor", "while gone")
        assert refused["error"]["type"] == "CLIENT_NOT_CONNECTED"

        async with open_stream(a.url, "visitor", last_event_id=seen["eventId"]) as (on_a, _):
            missed = [await on_a.next_event() for _ in in_transit]
            assert [event.id for event in missed] == [result["eventId"] for result in in_transit]
            assert [event.data["message"] for event in missed] == ["two", "three"]
            assert (await on_a.next_event()).event == "replayed"
            live = (await notify(a.url, "visitor", "four"))["result"]
            assert (await on_a.next_event()).id == live["eventId"]
            with pytest.raises(TimeoutError):
                await on_a.next_event(timeout=1)


async def test_redis_restart_mid_stream_fails_loudly_then_delivery_resumes(cluster, redis_server):
    a, b = cluster
    async with open_stream(b.url, "visitor") as (on_b, _):
        first = (await notify(a.url, "visitor", "before"))["result"]
        assert (await on_b.next_event()).id == first["eventId"]

        redis_server.stop()
        down = await notify(a.url, "visitor", "during")
        assert down["error"]["type"] == "UNAVAILABLE"
        # A timed-out command may still run if Redis was only slow: never "nothing happened, retry".
        assert "may still be delivered" in down["error"]["message"]
        status = await call_function(a.url, "getClientStatus", {"clientId": "visitor"})
        assert status["error"]["type"] == "UNAVAILABLE"
        assert "event" not in status["error"]["message"]  # it sends none
        for instance in (a, b):
            code, body = await get_json(instance.url, "/readyz")
            assert (code, body["broker"]) == (503, False)
        code, summary = await get_json(b.url, "/sse/status")
        assert (code, summary["status"], summary["totals"], summary["connections"]) == (200, "degraded", "local", 1)
        assert await on_b.next_comment(timeout=3) == "heartbeat"  # the stream stays open
        # A stream that cannot subscribe gets only a retry hint, and counts as a refusal,
        # where it counted as a stream its client closed (review reproduction).
        async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
            params = {"clientId": "newcomer", "token": client_token("newcomer")}
            refused = await http.get("/sse/connect", params=params)
        assert refused.text.startswith("retry:") and "connected" not in refused.text
        metrics = await scrape(b.url)
        assert metrics.value("channel_push_connects_refused_total", reason="broker_unavailable") == 1
        assert metrics.value("channel_push_disconnects_total", reason="broker_unavailable") == 1
        assert metrics.value("channel_push_disconnects_total", reason="client_closed") == 0

        redis_server.start()
        for instance in (a, b):
            await eventually(lambda url=instance.url: _ready(url))
        after = (await notify(a.url, "visitor", "after"))["result"]
        assert after["delivered"] == 1
        event = await on_b.next_event()
        assert (event.id, event.data["message"]) == (after["eventId"], "after")


async def test_stuck_client_is_dropped_while_another_keeps_receiving(redis_url, tmp_path):
    """The stuck stream fills the kernel's socket buffers (a few MB on loopback), then
    its bounded queue or the send timeout drops it; the reader never waits for it."""
    settings = {"CONNECTION_QUEUE_SIZE": "8", "SEND_TIMEOUT_SECONDS": "1"}
    with running_instances(redis_url, tmp_path, **settings) as (a, b):
        with stuck_stream(b.port, "stuck"):
            await eventually(lambda: _connections(a.url, 1))
            async with open_stream(b.url, "reader") as (reader, _):
                pad = "x" * 60_000
                dropped_at = None
                for n in range(200):
                    stuck = await call_function(a.url, "sendEvent", {"clientId": "stuck", "action": "tick", "payload": {"n": n, "pad": pad}})
                    read = await call_function(a.url, "sendEvent", {"clientId": "reader", "action": "tick", "payload": {"n": n, "pad": pad}})
                    event = await reader.next_event()
                    assert (event.id, event.data["payload"]["n"]) == (read["result"]["eventId"], n)
                    if "error" in stuck:
                        assert stuck["error"]["type"] == "CLIENT_NOT_CONNECTED"
                        dropped_at = dropped_at if dropped_at is not None else n
                    if dropped_at is not None and n >= dropped_at + 5:
                        break
                assert dropped_at is not None, "the stuck client was never dropped"
                status = (await call_function(a.url, "getClientStatus", {"clientId": "stuck"}))["result"]
                assert status["connected"] is False
        assert "Traceback" not in b.log_tail(20_000)


class stuck_stream:
    """A browser that opens its stream and then never reads (tiny receive buffer)."""

    def __init__(self, port: int, client_id: str) -> None:
        self._port = port
        self._client_id = client_id

    def __enter__(self) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self._port))
        query = f"clientId={self._client_id}&token={client_token(self._client_id)}"
        sock.sendall(f"GET /sse/connect?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self._sock = sock
        return sock

    def __exit__(self, *exc_info) -> None:
        self._sock.close()


async def _connections(base_url: str, expected: int) -> bool:
    code, summary = await get_json(base_url, "/sse/status")
    return code == 200 and summary["connections"] == expected


async def _ready(base_url: str) -> bool:
    code, _ = await get_json(base_url, "/readyz")
    return code == 200


async def test_right_after_redis_lost_its_data_a_visitor_whose_stream_is_open_is_never_called_not_connected(redis_url, redis_server, tmp_path):
    """Redis restarted without persistence forgets every presence; until the instance
    holding the stream registers it again (its reconnect, or its next heartbeat),
    calls on the other instance were answered CLIENT_NOT_CONNECTED and the event
    dropped (review: 5 runs of 5, for 0.25-1.3 s). Now such an event is queued, and
    the stream's instance hands it over when it catches up."""
    with running_instances(redis_url, tmp_path, HEARTBEAT_SECONDS="5") as (a, b):
        async with open_stream(b.url, "visitor") as (on_b, _):
            first = (await notify(a.url, "visitor", "before"))["result"]
            assert (await on_b.next_event()).id == first["eventId"]
            redis_server.stop()
            await asyncio.sleep(3)  # long enough for b's reconnect backoff to reach its 2 s cap
            redis_server.start()
            answers = []
            started = time.monotonic()
            while time.monotonic() - started < 3:
                answers.append(await notify(a.url, "visitor", f"after {len(answers)}"))
                await asyncio.sleep(0.05)
            refused = [answer["error"]["type"] for answer in answers if "error" in answer]
            assert "CLIENT_NOT_CONNECTED" not in refused
            sent = [answer["result"]["eventId"] for answer in answers if "result" in answer]
            assert sent, refused
            received = []
            while not set(sent) <= set(received):
                received.append((await on_b.next_event(timeout=10)).id)
    assert received == sorted(received, key=lambda event_id: tuple(map(int, event_id.split("-"))))


async def test_instances_share_a_redis_reached_over_its_unix_socket(redis_server, redis_url, tmp_path):
    """Review reproduction: REDIS_URL=unix://... (documented) failed every call with
    INTERNAL_ERROR and /readyz stayed 503: redis-py's unix connections refuse the
    socket_keepalive option the broker passed."""
    with running_instances(redis_server.unix_url, tmp_path, names=("a",)) as [a]:
        async with open_stream(a.url, "visitor") as (stream, _):
            result = (await notify(a.url, "visitor", "over the socket"))["result"]
            assert (await stream.next_event()).data["message"] == "over the socket"
        assert result["delivered"] == 1
        code, summary = await get_json(a.url, "/sse/status")
        assert (code, summary["broker"]) == (200, {"backend": "redis", "healthy": True})


async def test_a_redis_out_of_memory_is_not_ready_and_calls_are_told_nothing_was_sent(redis_server, redis_url, tmp_path):
    """Review reproduction: Redis refusing writes (maxmemory under noeviction) left
    /readyz at 200 and every call answered 'may still be delivered if Redis was only slow'."""
    admin = Redis.from_url(redis_url)
    with running_instances(redis_url, tmp_path, names=("a",)) as [a]:
        try:
            await admin.config_set("maxmemory", "1")
            code, _ = await get_json(a.url, "/readyz")
            answer = await notify(a.url, "visitor", "refused", queueIfOffline=True)
        finally:
            await admin.config_set("maxmemory", "0")
            await admin.aclose()
    assert code == 503
    assert answer["error"]["type"] == "UNAVAILABLE" and "nothing was sent" in answer["error"]["message"]

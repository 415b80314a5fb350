"""SIGTERM on a real `python -m channel_app serve` process with connected clients.

What ops rely on during a deploy: every stream ends promptly with a `retry:`
hint (so browsers reconnect to another instance), a function call already in
flight is still answered, new connects are not accepted, and the process exits
0. sse-starlette's own process-wide shutdown patch is switched off
(create_app), so the farewell retry hint each client receives can only come
from our drain.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest
from sse_starlette.sse import AppStatus

from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.processes import PRODUCTION_ENV, production_service, run_cli, service_env
from tests.support.server import free_socket
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio

GRACE_SECONDS = 3.0
CLIENTS = 3


def test_create_app_switches_off_sse_starlettes_own_shutdown_handling():
    make_app()
    assert AppStatus.enable_automatic_graceful_drain is False
    assert AppStatus.should_exit is False


async def test_sigterm_ends_streams_with_retry_hint_finishes_calls_refuses_connects_and_exits_zero(tmp_path):
    settings = {"SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS), "HEARTBEAT_SECONDS": "30"}
    with production_service(tmp_path, **settings) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http, AsyncExitStack() as streams:
            readers = []
            for number in range(CLIENTS):
                params = {"clientId": f"visitor-{number}", "token": client_token(f"visitor-{number}")}
                response = await streams.enter_async_context(http.stream("GET", "/sse/connect", params=params))
                reader = SseReader(response)
                assert (await reader.next_event()).event == "connected"
                readers.append(reader)

            # A function call whose body is still arriving when the signal lands.
            body = function_body("getClientStatus", {"clientId": "visitor-0"})
            first_part_sent, signal_sent = anyio.Event(), anyio.Event()

            async def trickled_body():
                yield body[:25]
                first_part_sent.set()
                await signal_sent.wait()
                await anyio.sleep(0.5)
                yield body[25:]

            answers: list[httpx.Response] = []
            stream_ended_after: list[float] = []

            async def call_in_flight() -> None:
                answers.append(await http.put("/functions", content=trickled_body(), headers=signed_headers(body)))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call_in_flight)
                await first_part_sent.wait()
                await anyio.sleep(0.5)  # the server has the request line and headers by now
                signalled_at = time.monotonic()
                service.process.send_signal(signal.SIGTERM)
                signal_sent.set()
                for reader in readers:
                    await reader.until_end(timeout=GRACE_SECONDS)
                    stream_ended_after.append(time.monotonic() - signalled_at)

        refused_or_turned_away = await _new_connects_after_signal(service.url)
        exit_code = await anyio.to_thread.run_sync(lambda: service.process.wait(timeout=GRACE_SECONDS + 5))
        exited_after = time.monotonic() - signalled_at
        records = service.log_records()

    assert all(reader.retries == [3000, 3000] for reader in readers), [reader.retries for reader in readers]
    assert max(stream_ended_after) < GRACE_SECONDS
    assert len(answers) == 1 and answers[0].status_code == 200
    assert answers[0].json()["result"]["clientId"] == "visitor-0"
    assert refused_or_turned_away
    assert exit_code == 0
    assert exited_after < GRACE_SECONDS + 2
    shutdown_lines = [r for r in records if r.get("message") == "sse disconnect" and r.get("reason") == "shutdown"]
    assert len(shutdown_lines) == CLIENTS
    assert any(r.get("message") == "function call" and r.get("method") == "getClientStatus" for r in records)


async def _new_connects_after_signal(url: str) -> bool:
    """True once a connect is refused at the socket; a connect that still gets
    through in the moment before the listener closes must not get a stream."""
    params = {"clientId": "late-visitor", "token": client_token("late-visitor")}
    deadline = time.monotonic() + GRACE_SECONDS
    async with httpx.AsyncClient(base_url=url, timeout=2) as fresh:
        while time.monotonic() < deadline:
            try:
                response = await fresh.get("/sse/connect", params=params)
            except httpx.TransportError:
                return True
            assert "event: connected" not in response.text
            await anyio.sleep(0.05)
    return False


def test_serve_exits_with_status_3_when_it_cannot_start(tmp_path):
    with free_socket() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        finished = run_cli("serve", "--port", str(port), env=service_env(**PRODUCTION_ENV))
    assert finished.returncode == 3


async def test_a_client_that_stopped_reading_does_not_hold_the_exit_to_the_grace_limit(tmp_path):
    """One visitor whose browser froze (reads nothing, its socket buffers full) cannot
    take its retry hint; the drain resets it within a second instead of waiting out
    SHUTDOWN_GRACE_SECONDS and having uvicorn cancel it with a traceback."""
    grace = 6.0
    settings = {"SHUTDOWN_GRACE_SECONDS": str(grace), "MAX_BODY_BYTES": "2000000"}
    with production_service(tmp_path, **settings) as service:
        port = int(service.url.rsplit(":", 1)[1])
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(f"GET /sse/connect?clientId=frozen&token={client_token('frozen')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert stalled.recv(1024).startswith(b"HTTP/1.1 200")
        try:
            async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
                for _ in range(8):  # megabytes more than the socket buffers hold
                    body = function_body("sendEvent", {"clientId": "frozen", "action": "fill", "payload": {"blob": "x" * 1_500_000}})
                    answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
                    assert answer["result"]["delivered"] == 1, answer
            signalled_at = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            exit_code = await anyio.to_thread.run_sync(lambda: service.process.wait(timeout=grace + 5))
            exited_after = time.monotonic() - signalled_at
        finally:
            stalled.close()
        log = service.log_text()
    assert exit_code == 0
    assert exited_after < grace / 2, exited_after
    assert "Exception in ASGI application" not in log


async def test_a_call_still_waiting_when_the_grace_ends_gets_its_error_object_not_a_500(tmp_path):
    """A waitForAck (up to 5 s) or a chat fallback (twice CHANNEL_API_TIMEOUT_SECONDS)
    can outlast SHUTDOWN_GRACE_SECONDS; uvicorn then cancelled the call and answered
    a plain-text 500, with a traceback in the log."""
    with production_service(tmp_path, SHUTDOWN_GRACE_SECONDS="1") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with http.stream("GET", "/sse/connect", params=params) as stream:
                reader = SseReader(stream)
                assert (await reader.next_event()).event == "connected"
                body = function_body("sendEvent", {"clientId": "visitor", "action": "wait", "waitForAck": 5000})
                answers: list[httpx.Response] = []

                async def waiting_call() -> None:
                    answers.append(await http.put("/functions", content=body, headers=signed_headers(body)))

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(waiting_call)
                    assert (await reader.next_event()).event == "custom"  # the call now waits for its ack
                    service.process.send_signal(signal.SIGTERM)
        exit_code = await anyio.to_thread.run_sync(lambda: service.process.wait(timeout=10))
        log = service.log_text()
    assert exit_code == 0
    assert (answers[0].status_code, answers[0].json()["error"]["type"]) == (200, "UNAVAILABLE")
    assert "Exception in ASGI application" not in log
    # Its log line names the call it cut (review reproduction: method, channel and
    # client were None, and the metric counted it as refused before parsing).
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    [cut] = [record for record in records if record.get("message") == "function call"]
    assert (cut["method"], cut["client_id"], cut["outcome"]) == ("sendEvent", "visitor", "UNAVAILABLE")


async def test_requests_whose_bodies_are_still_arriving_when_the_grace_ends_get_json_errors(tmp_path):
    """Review reproduction: a publish or an ack cut this way got uvicorn's plain-text 500
    and a traceback in the log; a function call cut before it was read was told an event
    it sent may have been delivered."""
    key = "publish-key-for-this-test-0123456789"
    settings = {"SHUTDOWN_GRACE_SECONDS": "1", "BODY_TIMEOUT_SECONDS": "30", "PUBLISH_API_KEYS": key}
    with production_service(tmp_path, **settings) as service:
        port = int(service.url.rsplit(":", 1)[1])
        heads = [
            f"POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Length: 100\r\n\r\n",
            "POST /sse/ack HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
            "PUT /functions HTTP/1.1\r\nHost: x\r\nX-Signature: c2lnbmF0dXJl\r\nContent-Length: 100\r\n\r\n",
        ]
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in heads]
        for sock, head in zip(sockets, heads):
            sock.sendall(head.encode() + b'{"tar')
        time.sleep(0.3)
        service.process.send_signal(signal.SIGTERM)
        answers = []
        for sock in sockets:
            sock.settimeout(10)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            sock.close()
            answers.append(answer)
        service.process.wait(timeout=10)
        log = service.log_text()
    statuses = [answer.split(b"\r\n", 1)[0] for answer in answers]
    bodies = [json.loads(answer.partition(b"\r\n\r\n")[2]) for answer in answers]
    assert statuses == [b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 200 OK"]
    assert [body["error"]["type"] for body in bodies] == ["UNAVAILABLE"] * 3
    assert "nothing was sent" in bodies[2]["error"]["message"]
    assert "Exception in ASGI application" not in log
    # Review reproduction: the cut publish had no channel_push.publish line (nor a count).
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    [cut_publish] = [record for record in records if record["logger"] == "channel_push.publish"]
    assert (cut_publish["outcome"], cut_publish["http_status"]) == ("UNAVAILABLE", 503)


@pytest.mark.redis
async def test_streams_whose_redis_stalled_end_without_a_traceback_when_the_grace_ends(tmp_path, redis_server, redis_url):
    """Review reproduction: with Redis stalled at SIGTERM, each stream's presence removal
    was still waiting when the grace ended, and uvicorn logged one "Exception in ASGI
    application" traceback per stream."""
    settings = {"SHUTDOWN_GRACE_SECONDS": "1", "REDIS_URL": redis_url, "REDIS_TIMEOUT_SECONDS": "5"}
    with production_service(tmp_path, **settings) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http, AsyncExitStack() as streams:
            for number in range(CLIENTS):
                params = {"clientId": f"visitor-{number}", "token": client_token(f"visitor-{number}")}
                response = await streams.enter_async_context(http.stream("GET", "/sse/connect", params=params))
                assert (await SseReader(response).next_event()).event == "connected"
            with redis_server.paused():
                service.process.send_signal(signal.SIGTERM)
                exit_code = await anyio.to_thread.run_sync(lambda: service.process.wait(timeout=10))
        log = service.log_text()
    assert exit_code == 0
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log


async def test_a_request_asking_for_an_upgrade_is_refused_in_json_and_holds_no_shutdown(tmp_path):
    """Review reproductions: with uvicorn's WebSocket protocol loaded (websockets comes with
    uvicorn[standard]), a request saying `Upgrade: websocket` with a body was never
    answered and kept its socket for good (200 of them: 200 descriptors, no count), and
    one held at SIGTERM crashed the shutdown (exit 1, a call in flight cut off). Without
    it, the parser dropped such a request's body (a signed call answered 401)."""
    with production_service(tmp_path, SHUTDOWN_GRACE_SECONDS="2") as service:
        port = int(service.url.rsplit(":", 1)[1])
        upgrade = b"POST /api/publish HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\n{}"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as answered:
            answered.sendall(upgrade)
            head = answered.recv(65536)
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(upgrade.replace(b"Content-Length: 2", b"Content-Length: 20"))  # its body never completes
        time.sleep(0.3)
        service.process.send_signal(signal.SIGTERM)
        exit_code = await anyio.to_thread.run_sync(lambda: service.process.wait(timeout=10))
        held.close()
        log = service.log_text()
    assert head.startswith(b"HTTP/1.1 400") and b"without Upgrade" in head
    assert exit_code == 0
    assert "Traceback" not in log and "WebSocket" not in log, log

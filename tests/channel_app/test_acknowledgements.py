"""waitForAck and POST /sse/ack against a real uvicorn: the call answers with what the browser did."""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest

from channel_app.inputs import RedirectInput, SendEventInput
from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.http import open_stream
from tests.support.server import RunningServer, run_server
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio


@pytest.fixture
def server():
    with run_server(make_app(cors_allowed_origins=["https://shop.example.com"])) as running:
        yield running


async def call(server: RunningServer, method: str, input: dict) -> dict:
    body = function_body(method, input)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return (await http.put("/functions", content=body, headers=signed_headers(body))).json()


async def ack(server: RunningServer, body: dict | bytes, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "text/plain;charset=UTF-8", **kwargs.pop("headers", {})}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return await http.post("/sse/ack", content=content, headers=headers, **kwargs)


async def call_and_ack(server, stream: SseReader, method: str, input: dict, outcome: str | None, token: str) -> dict:
    """Make the call; meanwhile act as the browser: read the event and acknowledge it."""
    answer: dict = {}

    async def make_call() -> None:
        answer.update(await call(server, method, input))

    async with anyio.create_task_group() as group:
        group.start_soon(make_call)
        event = await stream.next_event()
        if outcome is not None:
            response = await ack(server, {"clientId": input["clientId"], "eventId": event.id, "outcome": outcome, "token": token})
            assert response.status_code == 204
    assert answer["result"]["eventId"] == event.id
    return answer["result"]


async def test_redirect_with_wait_for_ack_answers_acknowledged_true(server):
    token = client_token("visitor")
    async with open_stream(server.url, "visitor") as (stream, _):
        input = {"clientId": "visitor", "url": "https://shop.example.com/checkout", "waitForAck": 3000}
        result = await call_and_ack(server, stream, "redirectClient", input, "done", token)
    assert result["acknowledged"] is True
    assert result["ackOutcome"] == "done"
    assert result["attributes"]["message"] == "Redirect command sent to client visitor; the browser confirmed it acted on it"


async def test_send_event_with_wait_for_ack_reports_a_refusal_as_not_acknowledged(server):
    token = client_token("visitor")
    async with open_stream(server.url, "visitor") as (stream, _):
        input = {"clientId": "visitor", "action": "openCart", "payload": {}, "waitForAck": 3000}
        result = await call_and_ack(server, stream, "sendEvent", input, "declined", token)
    assert result["acknowledged"] is False
    assert result["ackOutcome"] == "declined"


async def test_wait_for_ack_without_ack_answers_acknowledged_false_after_the_deadline(server):
    async with open_stream(server.url, "visitor") as (stream, _):
        started = time.monotonic()
        input = {"clientId": "visitor", "url": "https://shop.example.com/", "waitForAck": 300}
        result = await call_and_ack(server, stream, "redirectClient", input, None, "")
        waited = time.monotonic() - started
    assert result["acknowledged"] is False
    assert result["ackOutcome"] == "timeout"
    assert "did not confirm within 300 ms" in result["attributes"]["message"]
    assert waited >= 0.3


async def test_call_without_wait_for_ack_answers_at_once_without_ack_fields(server):
    async with open_stream(server.url, "visitor"):
        result = (await call(server, "redirectClient", {"clientId": "visitor", "url": "https://shop.example.com/"}))["result"]
    assert "acknowledged" not in result


@pytest.mark.parametrize("value", [-1, "soon", True, 1.5])
async def test_invalid_wait_for_ack_is_invalid_params(server, value):
    async with open_stream(server.url, "visitor"):
        answer = await call(server, "redirectClient", {"clientId": "visitor", "url": "https://shop.example.com/", "waitForAck": value})
    assert answer["error"]["type"] == "INVALID_PARAMS"
    assert "waitForAck" in answer["error"]["message"]


async def test_ack_with_bearer_header_is_accepted(server):
    response = await ack(
        server,
        {"clientId": "visitor", "eventId": "1-0", "outcome": "done"},
        headers={"Authorization": f"Bearer {client_token('visitor')}"},
    )
    assert response.status_code == 204


async def test_ack_for_an_event_nobody_waits_for_is_accepted_harmlessly(server):
    response = await ack(server, {"clientId": "visitor", "eventId": "99-9", "token": client_token("visitor")})
    assert response.status_code == 204
    assert response.content == b""


async def test_ack_without_token_is_401(server):
    response = await ack(server, {"clientId": "visitor", "eventId": "1-0"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "UNAUTHORIZED"


async def test_ack_with_bad_token_is_401(server):
    response = await ack(server, {"clientId": "visitor", "eventId": "1-0", "token": "not-a-jwt"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "INVALID_TOKEN"


async def test_ack_for_another_clients_event_is_403_and_does_not_count(server):
    attacker = client_token("attacker")
    async with open_stream(server.url, "victim") as (stream, _):
        answer: dict = {}

        async def make_call() -> None:
            input = {"clientId": "victim", "url": "https://shop.example.com/", "waitForAck": 500}
            answer.update(await call(server, "redirectClient", input))

        async with anyio.create_task_group() as group:
            group.start_soon(make_call)
            event = await stream.next_event()
            forged = await ack(server, {"clientId": "victim", "eventId": event.id, "token": attacker})
            assert forged.status_code == 403
            assert forged.json()["error"]["type"] == "FORBIDDEN"
    assert answer["result"]["acknowledged"] is False


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        (b"{not json", 400, "INVALID_JSON"),
        (b"[1, 2]", 400, "INVALID_REQUEST"),
        (json.dumps({"clientId": "visitor"}).encode(), 400, "INVALID_REQUEST"),
        (json.dumps({"clientId": "visitor", "eventId": "1-0\nevent: x"}).encode(), 400, "INVALID_REQUEST"),
        (json.dumps({"clientId": "visitor", "eventId": "1-0", "outcome": "maybe"}).encode(), 400, "INVALID_REQUEST"),
        (json.dumps({"clientId": "bad id", "eventId": "1-0"}).encode(), 400, "INVALID_REQUEST"),
        (b"x" * 20000, 413, "PAYLOAD_TOO_LARGE"),
    ],
    ids=["not-json", "not-an-object", "no-event-id", "event-id-with-newline", "unknown-outcome", "bad-client-id", "too-large"],
)
async def test_malformed_ack_gets_a_clear_error(server, body, status, error_type):
    response = await ack(server, body)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type


async def test_ack_from_an_allowed_origin_gets_cors_headers(server):
    response = await ack(
        server,
        {"clientId": "visitor", "eventId": "1-0", "token": client_token("visitor")},
        headers={"Origin": "https://shop.example.com"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://shop.example.com"


async def test_ack_from_another_origin_gets_no_cors_headers(server):
    response = await ack(
        server,
        {"clientId": "visitor", "eventId": "1-0", "token": client_token("visitor")},
        headers={"Origin": "https://evil.example.net"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_wait_for_ack_above_the_cap_is_capped_at_5000_ms():
    assert RedirectInput.model_validate({"url": "https://shop.example.com/", "waitForAck": 60000}).wait_for_ack == 5000
    assert SendEventInput.model_validate({"action": "openCart", "waitForAck": 1500}).wait_for_ack == 1500

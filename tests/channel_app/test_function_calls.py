"""PUT /functions end to end: a signed Channel call becomes an SSE event in the browser's stream."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.apps import make_app
from tests.support.channel import function_body, signed_headers
from tests.support.http import open_stream
from tests.support.server import RunningServer, run_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def server():
    with run_server(make_app()) as running:
        yield running


async def call(server: RunningServer, method: str, input: dict, path: str = "/functions", **context) -> httpx.Response:
    body = function_body(method, input, **context)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return await http.put(path, content=body, headers=signed_headers(body))


async def test_signed_redirect_reaches_connected_client_as_sse_event(server):
    async with open_stream(server.url, "visitor-1") as (stream, _):
        response = await call(server, "redirectClient", {"clientId": "visitor-1", "url": "https://shop.example.com/checkout?step=1"})
        assert response.status_code == 200
        result = response.json()["result"]
        assert result["type"] == "string"
        assert result["attributes"]["message"] == "Redirect command sent to client visitor-1"
        assert result["delivered"] == 1

        event = await stream.next_event()
        assert event.event == "redirect"
        assert event.id == result["eventId"]
        assert event.data["type"] == "redirect"
        assert event.data["url"] == "https://shop.example.com/checkout?step=1"
        assert event.data["timestamp"].endswith("Z")


async def test_versioned_function_path_is_served(server):
    async with open_stream(server.url, "visitor-v"):
        response = await call(server, "getClientStatus", {"clientId": "visitor-v"}, path="/functions/v1")
    assert response.json()["result"]["connected"] is True


async def test_two_tabs_of_one_client_both_receive(server):
    async with open_stream(server.url, "visitor-2") as (tab1, _), open_stream(server.url, "visitor-2") as (tab2, _):
        response = await call(server, "notify", {"clientId": "visitor-2", "message": "안녕하세요", "title": "알림"})
        assert response.json()["result"]["delivered"] == 2
        for tab in (tab1, tab2):
            event = await tab.next_event()
            assert event.event == "notification"
            assert event.data["message"] == "안녕하세요"
            assert "\\u" not in "\n".join(event.data_lines)


async def test_send_event_delivers_custom_action_and_payload(server):
    async with open_stream(server.url, "visitor-3") as (stream, _):
        payload = {"sku": "A-1", "qty": 2, "note": "줄바꿈\n포함"}
        response = await call(server, "sendEvent", {"clientId": "visitor-3", "action": "addToCart", "payload": payload})
        assert "result" in response.json()
        event = await stream.next_event()
    assert event.event == "custom"
    assert event.data["action"] == "addToCart"
    assert event.data["payload"] == payload


async def test_client_not_connected_is_a_function_error(server):
    response = await call(server, "redirectClient", {"clientId": "nobody", "url": "https://shop.example.com/"})
    assert response.status_code == 200
    assert response.json()["error"]["type"] == "CLIENT_NOT_CONNECTED"


async def test_redirect_to_unlisted_host_is_refused_and_not_sent(server):
    async with open_stream(server.url, "visitor-4") as (stream, _):
        response = await call(server, "redirectClient", {"clientId": "visitor-4", "url": "https://evil.example.net/"})
        assert response.status_code == 200
        assert response.json()["error"]["type"] == "URL_NOT_ALLOWED"
        await call(server, "notify", {"clientId": "visitor-4", "message": "after"})
        assert (await stream.next_event()).event == "notification"


@pytest.mark.parametrize(
    ("method", "input", "expected"),
    [
        ("redirectClient", {"clientId": "x"}, "INVALID_PARAMS"),
        ("redirectClient", {"url": "https://shop.example.com/"}, "INVALID_PARAMS"),
        ("notify", {"clientId": "bad id\n", "message": "hi"}, "INVALID_PARAMS"),
        ("sendEvent", {"clientId": "x", "action": "bad\r\nevent: x", "payload": {}}, "INVALID_PARAMS"),
        ("deleteEverything", {}, "METHOD_NOT_FOUND"),
        ("broadcast", {"message": "hi"}, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_function_level_failures_answer_200_with_error_object(server, method, input, expected):
    response = await call(server, method, input)
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["type"] == expected
    assert error["message"]


async def test_missing_client_id_targets_the_chat_users_member_id(server):
    async with open_stream(server.url, "member-77") as (stream, _):
        response = await call(server, "notify", {"message": "hello"}, user={"id": "u1", "memberId": "member-77"})
        assert response.json()["result"]["clientId"] == "member-77"
        assert (await stream.next_event()).data["message"] == "hello"


async def test_broadcast_reaches_every_client_when_enabled():
    with run_server(make_app(allow_broadcast=True)) as server:
        async with open_stream(server.url, "a") as (a, _), open_stream(server.url, "b") as (b, _):
            response = await call(server, "broadcast", {"message": "sale"})
            assert response.json()["result"]["delivered"] == 2
            assert (await a.next_event()).data["message"] == "sale"
            assert (await b.next_event()).data["message"] == "sale"


async def test_get_client_status_counts_connections(server):
    async with open_stream(server.url, "visitor-5"), open_stream(server.url, "visitor-5"):
        response = await call(server, "getClientStatus", {"clientId": "visitor-5"})
    result = response.json()["result"]
    assert (result["connected"], result["connections"]) == (True, 2)


async def test_send_event_payload_given_as_json_text_arrives_as_an_object(server):
    async with open_stream(server.url, "visitor-6") as (stream, _):
        await call(server, "sendEvent", {"clientId": "visitor-6", "action": "applyCoupon", "payload": '{"couponCode": "WELCOME10"}'})
        event = await stream.next_event()
    assert event.data["payload"] == {"couponCode": "WELCOME10"}


async def test_optional_parameters_alf_leaves_blank_are_absent_and_bool_text_is_a_bool(server):
    """ALF fills command parameters as text and sends the ones it leaves out as empty
    strings. Before, a blank `level`, `waitForAck` or `queueIfOffline` (and the text
    "true") was INVALID_PARAMS, and a blank clientId of spaces did not fall back to
    the chat user's memberId."""
    async with open_stream(server.url, "visitor-7") as (stream, _):
        notified = await call(server, "notify", {"clientId": "visitor-7", "message": "hi", "title": "", "level": "", "queueIfOffline": ""})
        assert notified.json()["result"]["delivered"] == 1
        event = await stream.next_event()
        assert (event.data["level"], event.data.get("title")) == ("info", None)
        redirected = await call(server, "redirectClient", {"clientId": "visitor-7", "url": "https://shop.example.com/", "waitForAck": " "})
        assert redirected.json()["result"]["delivered"] == 1
    queued = await call(server, "redirectClient", {"clientId": "away-7", "url": "https://shop.example.com/", "queueIfOffline": "true"})
    assert queued.json()["result"]["queued"] is True
    dropped = await call(server, "redirectClient", {"clientId": "away-8", "url": "https://shop.example.com/", "queueIfOffline": "FALSE"})
    assert dropped.json()["error"]["type"] == "CLIENT_NOT_CONNECTED"
    unclear = await call(server, "redirectClient", {"clientId": "away-9", "url": "https://shop.example.com/", "queueIfOffline": "yes"})
    assert unclear.json()["error"]["type"] == "INVALID_PARAMS"
    async with open_stream(server.url, "member-8"):
        status = await call(server, "getClientStatus", {"clientId": "  "}, user={"memberId": "member-8"})
    assert status.json()["result"]["clientId"] == "member-8"


async def test_null_input_numeric_ids_and_any_method_name_are_answered_as_calls(server):
    """Go's SDK encodes an empty map as null, and ids may arrive as numbers: these
    were 400 INVALID_REQUEST, as was a method name over 128 characters, where Channel
    expects a function-level answer (HTTP 200)."""
    async with open_stream(server.url, "12345"):
        body = json.dumps({"method": "getClientStatus", "params": {"input": None}, "context": {"channel": {"id": 7}, "user": {"memberId": 12345}}})
        async with httpx.AsyncClient(base_url=server.url) as http:
            status = await http.put("/functions", content=body, headers=signed_headers(body.encode()))
    assert (status.status_code, status.json()["result"]["clientId"]) == (200, "12345")
    async with open_stream(server.url, "67890"):
        numeric = await call(server, "getClientStatus", {"clientId": 67890})
    assert numeric.json()["result"]["connected"] is True
    unknown = await call(server, "x" * 500, {})
    assert (unknown.status_code, unknown.json()["error"]["type"]) == (200, "METHOD_NOT_FOUND")
    assert len(unknown.json()["error"]["message"]) < 100


async def test_a_blank_member_id_is_no_target(server):
    """Review reproduction: memberId "   " targeted client "" (queued for it with
    queueIfOffline), which can never connect; memberId "" was INVALID_PARAMS."""
    for member_id in ("", "   "):
        answer = await call(server, "notify", {"message": "hi", "queueIfOffline": True}, user={"memberId": member_id})
        assert answer.json()["error"]["type"] == "INVALID_PARAMS"


async def test_an_id_sent_as_a_number_too_large_to_read_exactly_is_refused_not_misrouted(server):
    """Review reproduction: 123456789012345678901234567890 as clientId (or memberId)
    targeted client "1.2345678901234568e+29": JSON parsing turns integers past 64
    bits into floats, and a float was read as its text."""
    huge = 123456789012345678901234567890
    by_input = await call(server, "getClientStatus", {"clientId": huge})
    assert by_input.json()["error"]["type"] == "INVALID_PARAMS"
    body = json.dumps({"method": "notify", "params": {"input": {"message": "hi"}}, "context": {"user": {"memberId": huge}}})
    async with httpx.AsyncClient(base_url=server.url) as http:
        by_member = await http.put("/functions", content=body, headers=signed_headers(body.encode()))
    assert (by_member.status_code, by_member.json()["error"]["type"]) == (400, "INVALID_REQUEST")

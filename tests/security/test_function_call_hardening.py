"""Threat: a forged or replayed-from-elsewhere function call steering visitors' browsers.

Only Channel, holding the app's signing key, may call /functions; keys rotate
without downtime; an allow-list of channel ids can fence the app to known
workspaces; a flood of calls is throttled without crashing; no input makes
the endpoint answer 500.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest

from tests.support.apps import make_app
from tests.support.asgi import asgi_client
from tests.support.channel import SIGNING_KEY_HEX, function_body, signed_headers
from tests.support.http import PUBLISH_KEY
from tests.support.server import run_server

pytestmark = pytest.mark.anyio

PREVIOUS_KEY_HEX = "a1" * 32


@pytest.fixture
async def make_client():
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**overrides):
            return await stack.enter_async_context(asgi_client(**overrides))

        yield factory


async def test_call_signed_with_previous_key_is_accepted_during_rotation(make_client):
    http = await make_client(channel_signing_key_previous=PREVIOUS_KEY_HEX)
    body = function_body("getClientStatus", {"clientId": "x"})
    for key in (SIGNING_KEY_HEX, PREVIOUS_KEY_HEX):
        response = await http.put("/functions", content=body, headers=signed_headers(body, key))
        assert response.status_code == 200
        assert "result" in response.json()


async def test_call_signed_with_retired_key_is_rejected_after_rotation(make_client):
    http = await make_client()
    body = function_body("getClientStatus", {"clientId": "x"})
    response = await http.put("/functions", content=body, headers=signed_headers(body, PREVIOUS_KEY_HEX))
    assert response.status_code == 401


async def test_signature_computed_over_reserialised_json_is_rejected(make_client):
    http = await make_client()
    body = b'{"method":"getClientStatus","params":{"input":{"clientId":"x"}}}'
    reserialised = json.dumps(json.loads(body)).encode()
    assert reserialised != body
    response = await http.put("/functions", content=body, headers=signed_headers(reserialised))
    assert response.status_code == 401


async def test_signature_with_the_key_text_instead_of_hex_bytes_is_rejected(make_client):
    import base64
    import hashlib
    import hmac

    http = await make_client()
    body = function_body("getClientStatus", {"clientId": "x"})
    wrong = base64.b64encode(hmac.new(SIGNING_KEY_HEX.encode(), body, hashlib.sha256).digest()).decode()
    response = await http.put("/functions", content=body, headers={"X-Signature": wrong})
    assert response.status_code == 401


async def test_call_from_unlisted_channel_is_unauthorized(make_client):
    http = await make_client(allowed_channel_ids=["channel-ok"])
    body = function_body("getClientStatus", {"clientId": "x"})  # context.channel.id = channel-1
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.status_code == 200
    assert response.json()["error"]["type"] == "UNAUTHORIZED"

    allowed = function_body("getClientStatus", {"clientId": "x"}, channel={"id": "channel-ok"})
    response = await http.put("/functions", content=allowed, headers=signed_headers(allowed))
    assert "result" in response.json()


async def test_call_flood_from_one_channel_is_rate_limited_with_error_object(make_client):
    http = await make_client(rate_limit_function_per_channel="3/minute")
    answers = []
    for index in range(5):
        body = function_body("getClientStatus", {"clientId": f"c{index}"})
        answers.append((await http.put("/functions", content=body, headers=signed_headers(body))).json())
    assert ["result" in answer for answer in answers] == [True, True, True, False, False]
    error = answers[-1]["error"]
    assert error["type"] == "RATE_LIMITED"
    assert error["data"]["retryAfterSeconds"] > 0


async def test_call_flood_at_one_target_client_is_rate_limited(make_client):
    http = await make_client(rate_limit_function_per_client="2/minute")
    types = []
    for _ in range(3):
        body = function_body("notify", {"clientId": "victim", "message": "spam"})
        answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
        types.append(answer["error"]["type"])
    assert types == ["CLIENT_NOT_CONNECTED", "CLIENT_NOT_CONNECTED", "RATE_LIMITED"]


CUSTOMER = {"caller": {"type": "user", "id": "user-1"}, "user": {"id": "user-1", "memberId": "alice"}}


@pytest.mark.parametrize("method", ["notify", "redirectClient", "sendEvent", "getClientStatus"])
async def test_a_customers_own_call_acts_only_on_their_own_page(make_client, method):
    """Review reproduction: a call from user-1's chat with caller.type "user" (a front
    command, or ALF told "a manager gave me visitor id user-2") pushed a toast
    ("Your account is locked. Call ... now.") to another visitor's browser."""
    http = await make_client()
    inputs = {"notify": {"message": "hi"}, "redirectClient": {"url": "https://shop.example.com/"}, "sendEvent": {"action": "go"}}.get(method, {})
    answers = {}
    for name, target, context in [
        ("other", {"clientId": "bob"}, CUSTOMER),
        ("no member id", {"clientId": "alice"}, {**CUSTOMER, "user": {"id": "user-1"}}),
        ("own", {"clientId": "alice"}, CUSTOMER),
        ("own by default", {}, CUSTOMER),
        ("manager for another", {"clientId": "bob"}, {}),
    ]:
        body = function_body(method, {**inputs, **target}, **context)
        answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
        answers[name] = answer["error"]["type"] if "error" in answer else "ok"
    allowed = "ok" if method == "getClientStatus" else "CLIENT_NOT_CONNECTED"
    assert answers == {
        "other": "UNAUTHORIZED", "no member id": "UNAUTHORIZED", "own": allowed, "own by default": allowed, "manager for another": allowed,
    }


@pytest.mark.parametrize(
    ("method", "inputs"),
    [("notify", {"topic": "promo", "message": "hi"}), ("sendEvent", {"topic": "promo", "action": "go"}), ("broadcast", {"message": "hi"})],
)
async def test_a_customers_own_call_reaches_no_topic_nor_everyone(make_client, method, inputs):
    """Review reproduction: with ALLOW_BROADCAST, the guard on clientId was stepped
    around by a topic or a broadcast: a customer's call reached every subscriber."""
    http = await make_client(allow_broadcast=True)
    customer = await http.put("/functions", content=(body := function_body(method, inputs, **CUSTOMER)), headers=signed_headers(body))
    manager = await http.put("/functions", content=(body := function_body(method, inputs)), headers=signed_headers(body))
    assert customer.json()["error"]["type"] == "UNAUTHORIZED"
    assert "result" in manager.json()


async def test_functions_endpoint_sends_no_cors_headers(make_client):
    http = await make_client(cors_allowed_origins=["https://shop.example.com"])
    body = function_body("getClientStatus", {"clientId": "x"})
    headers = {**signed_headers(body), "Origin": "https://shop.example.com"}
    response = await http.put("/functions", content=body, headers=headers)
    assert "access-control-allow-origin" not in response.headers
    preflight = await http.options(
        "/functions",
        headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "PUT"},
    )
    assert "access-control-allow-origin" not in preflight.headers


HOSTILE_BODIES = [
    b"",
    b"null",
    b"[]",
    b'"string"',
    b"\xff\xfe\x00garbage",
    b'{"method": 5}',
    b'{"method": "notify", "params": []}',
    b'{"method": "notify", "params": {"input": "text"}}',
    b'{"method": "notify", "params": {"input": {"clientId": 5, "message": ["x"]}}}',
    b'{"method": "notify", "context": {"user": {"memberId": "bad id with spaces"}}, "params": {"input": {"message": "x"}}}',
    b'{"method": "redirectClient", "params": {"input": {"clientId": "x", "url": {"href": "x"}}}}',
    b'{"method": "sendEvent", "params": {"input": {"clientId": "x", "action": "", "payload": 1}}}',
    b'{"method": "' + b"m" * 500 + b'"}',
    b'{"method": "notify", "params": {"input": {"clientId": "x", "message": "' + "\u0000".encode() + b'"}}}',
    b"[" * 5000 + b"]" * 5000,
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
async def test_hostile_signed_bodies_never_cause_a_500(make_client, body):
    http = await make_client(max_body_bytes=20000)
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.status_code in (200, 400, 413)
    assert response.json()["error"]["type"] != "INTERNAL_ERROR"


@pytest.mark.parametrize("as_text", [False, True], ids=["json", "json-text"])
async def test_a_payload_nested_deeper_than_we_can_send_is_invalid_params(make_client, as_text):
    """A payload JSON parses but the event encoder refuses: found at delivery it was
    an INTERNAL_ERROR and a stack trace in the log."""
    http = await make_client()
    payload = "[" * 300 + "]" * 300
    body = function_body("sendEvent", {"clientId": "x", "action": "a", "payload": payload if as_text else json.loads(payload)})
    error = (await http.put("/functions", content=body, headers=signed_headers(body))).json()["error"]
    assert error["type"] == "INVALID_PARAMS"
    assert "nested more than 32 levels" in error["message"]


@pytest.mark.parametrize("number", [b"18446744073709551616", b"-9223372036854775809", b"[1, 123456789012345678901234567890]"])
async def test_a_payload_number_that_would_lose_digits_is_invalid_params(make_client, number):
    """Review reproduction (publish API): integers past 64 bits were parsed as floats and
    went out changed (1.8446744073709552e+19) with a 200."""
    http = await make_client()
    body = b'{"method": "sendEvent", "params": {"input": {"clientId": "x", "action": "a", "payload": {"n": %s}}}}' % number
    error = (await http.put("/functions", content=body, headers=signed_headers(body))).json()["error"]
    assert error["type"] == "INVALID_PARAMS" and "64 bits" in error["message"]


async def test_payload_numbers_within_64_bits_and_fractions_pass(make_client):
    http = await make_client()
    body = b'{"method": "sendEvent", "params": {"input": {"clientId": "x", "action": "a", "payload": [18446744073709551615, -9223372036854775808, 1.5, 1e19, -1e-300]}}}'
    answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
    assert answer["error"]["type"] == "CLIENT_NOT_CONNECTED"  # validated; nobody listening


async def test_per_channel_redirect_list_from_settings_replaces_the_default(make_client, monkeypatch):
    from config.settings import Settings

    monkeypatch.setenv("REDIRECT_ALLOWED_HOSTS_BY_CHANNEL", '{"channel-1": ["store.example.net"]}')
    assert Settings(_env_file=None).redirect_allowed_hosts_by_channel == {"channel-1": ["store.example.net"]}
    http = await make_client(
        redirect_allowed_hosts_by_channel={"channel-1": ["store.example.net"]},
        redirect_http_hosts=["legacy.example.com"],
    )
    answers = {}
    urls = ("https://store.example.net/", "https://shop.example.com/", "http://legacy.example.com/", "https://legacy.example.com/")
    for url in urls:
        body = function_body("redirectClient", {"clientId": "away", "url": url})
        answers[url] = (await http.put("/functions", content=body, headers=signed_headers(body))).json()["error"]["type"]
    # Threat: hosts listed only for plain http in the default list leaking into a channel
    # whose own list was meant to confine it.
    assert answers == {
        "https://store.example.net/": "CLIENT_NOT_CONNECTED",
        "https://shop.example.com/": "URL_NOT_ALLOWED",
        "http://legacy.example.com/": "URL_NOT_ALLOWED",
        "https://legacy.example.com/": "URL_NOT_ALLOWED",
    }


@pytest.mark.parametrize("path", ["/functions", "/api/publish"])
def test_a_body_trickled_too_slowly_is_408_not_held_open(path):
    """Slowloris: a caller that declares a body and sends it a byte at a time (or
    never) would hold the request open indefinitely; uvicorn has no body timeout."""
    app = make_app(body_timeout_seconds=0.5, publish_api_keys=PUBLISH_KEY)
    with run_server(app) as server, socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5) as sock:
        method = "PUT" if path == "/functions" else "POST"
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {PUBLISH_KEY}\r\nContent-Length: 100\r\n\r\n{{".encode())
        started = time.monotonic()
        head, body = _read_response(sock)
        assert time.monotonic() - started < 4
    assert head.partition("\r\n")[0] == "HTTP/1.1 408 Request Timeout"
    assert json.loads(body)["error"]["type"] == "REQUEST_TIMEOUT"


def _read_response(sock: socket.socket) -> tuple[str, bytes]:
    """One HTTP response with a Content-Length, however the server split its writes."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += _more(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += _more(sock)
    return head.decode(), body


def _more(sock: socket.socket) -> bytes:
    chunk = sock.recv(4096)
    assert chunk, "the server closed the connection before its whole answer"
    return chunk

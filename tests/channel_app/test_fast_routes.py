"""The stream and function routes are dispatched ahead of Starlette's router:
they behave exactly as routed ones, and everything else still takes the route table."""

from __future__ import annotations

import gc
import socket

import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.asgi import asgi_client
from tests.support.channel import function_body, signed_headers
from tests.support.server import run_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def server():
    with run_server(make_app()) as running:
        yield running


async def test_versioned_function_path_is_served_like_the_plain_one(server):
    body = function_body("getClientStatus", {"clientId": "visitor"})
    async with httpx.AsyncClient(base_url=server.url) as http:
        plain = await http.put("/functions", content=body, headers=signed_headers(body))
        versioned = await http.put("/functions/v1", content=body, headers=signed_headers(body))
    assert plain.status_code == versioned.status_code == 200
    assert plain.json()["result"]["connected"] is False
    assert versioned.json() == plain.json()


async def test_other_methods_and_deeper_paths_still_get_the_route_tables_json_errors(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        deeper = await http.put("/functions/v1/extra", content=b"{}")
        wrong_method = await http.post("/functions", content=b"{}")
        head = await http.head("/sse/connect", params={"clientId": "visitor"})
    assert deeper.status_code == 404 and deeper.json()["error"]["type"] == "NOT_FOUND"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "METHOD_NOT_ALLOWED"
    assert head.status_code == 401


async def test_unexpected_error_on_the_stream_route_is_a_json_500_without_details(server):
    async def broken_verify(token: str):
        raise RuntimeError("secret detail that must not leak")

    server.app.state.services.tokens.verify = broken_verify
    params = {"clientId": "visitor", "token": client_token("visitor")}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/sse/connect", params=params)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "INTERNAL_ERROR"
    assert "secret detail" not in response.text


async def test_stream_route_sends_cors_headers_to_an_allowed_origin():
    app = make_app(cors_allowed_origins=["https://shop.example.com"])
    with run_server(app) as running:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        headers = {"Origin": "https://shop.example.com"}
        async with httpx.AsyncClient(base_url=running.url) as http:
            async with http.stream("GET", "/sse/connect", params=params, headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["access-control-allow-origin"] == "https://shop.example.com"


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("access-control-") or name == "vary"}


@pytest.mark.parametrize("allowed", [["https://shop.example.com"], ["*"]])
@pytest.mark.parametrize("origin", ["https://shop.example.com", "https://evil.example", None])
async def test_stream_route_cors_headers_are_the_ones_the_cors_middleware_sends(allowed, origin):
    # The stream route adds CORS headers itself (no middleware around each frame);
    # /sse/check goes through Starlette's CORSMiddleware. Both answer 401 here, or 403
    # to an origin the list does not name.
    headers = {"Origin": origin} if origin else {}
    refused = 403 if origin == "https://evil.example" and allowed != ["*"] else 401
    async with asgi_client(cors_allowed_origins=allowed) as http:
        for _ in range(2):  # computed, then remembered
            stream = await http.get("/sse/connect", params={"clientId": "visitor"}, headers=headers)
            check = await http.get("/sse/check", params={"clientId": "visitor"}, headers=headers)
            assert stream.status_code == check.status_code == refused
            assert cors_headers(stream) == cors_headers(check)
            assert "vary" in cors_headers(stream)


async def test_head_with_a_valid_token_answers_headers_and_holds_no_connection(server):
    params = {"clientId": "visitor", "token": client_token("visitor")}
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        head = await http.head("/sse/connect", params=params)
        status = (await http.get("/sse/status")).json()
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/event-stream")
    assert status["connections"] == 0


def test_an_answered_call_leaves_no_reference_cycle_for_the_garbage_collector(server):
    """The scope once kept the server's `send` after the answer: scope -> send ->
    uvicorn's cycle -> scope, so every call's request state waited for the cyclic
    collector, whose passes grew slow with thousands of streams held."""
    body = function_body("getClientStatus", {"clientId": "visitor"})
    request = (
        b"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
        + b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in signed_headers(body).items())
        + b"\r\n" + body
    )
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as caller:
        _answer(caller, request)  # warm-up: first-call caches are not garbage
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                _answer(caller, request)
            gc.collect()
            cycle_types = {type(thing).__name__ for thing in gc.garbage}
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert "RequestResponseCycle" not in cycle_types


def _answer(caller: socket.socket, request: bytes) -> None:
    caller.sendall(request)
    received = b""
    while not received.endswith(b"}}"):
        received += caller.recv(65536)

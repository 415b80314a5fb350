"""The status stream and the ops page: who may open them, and what they carry."""

from __future__ import annotations

import re
import socket
from importlib.resources import files

import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.server import run_server
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio

OPS_TOKEN = "ops-token-for-tests-0123456789"


@pytest.mark.parametrize("path", ["/sse/status/stream", "/ops"])
async def test_production_without_ops_token_refuses_ops_views(path):
    with run_server(make_app(app_env="production")) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.get(path)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "FORBIDDEN"


async def test_development_without_ops_token_allows_the_ops_page():
    with run_server(make_app(app_env="development")) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/ops")).status_code == 200


@pytest.mark.parametrize("path", ["/sse/status/stream", "/metrics"])
@pytest.mark.parametrize(
    "credentials",
    [{}, {"params": {"token": "wrong"}}, {"headers": {"Authorization": "Bearer wrong"}}, {"params": {"token": ""}}],
    ids=["none", "wrong-query", "wrong-bearer", "empty"],
)
async def test_ops_views_refuse_a_missing_or_wrong_token(path, credentials):
    with run_server(make_app(ops_token=OPS_TOKEN)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.get(path, **credentials)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_ops_token_read_from_a_file_with_its_newline_is_accepted_as_sent():
    """Review reproduction: OPS_TOKEN="<token>\n" (a secret file's last line) started,
    and then every scrape and status stream was 401: a header cannot carry the newline."""
    with run_server(make_app(ops_token=OPS_TOKEN + "\n")) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            bearer = await http.get("/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
            query = await http.get("/metrics", params={"token": OPS_TOKEN})
    assert (bearer.status_code, query.status_code) == (200, 200)


async def test_the_ops_page_is_served_without_the_token_it_holds_no_data():
    """Review reproduction: a reload of /ops (its token gone from the address bar) was
    a 401, so the page could not be reloaded or bookmarked. The data stays behind the
    token: the page only draws from the status stream."""
    with run_server(make_app(ops_token=OPS_TOKEN, app_env="production")) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            page = await http.get("/ops")
            stream = await http.get("/sse/status/stream")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert stream.status_code == 401


async def test_status_stream_sends_status_memory_cpu_rates_and_ends_on_drain():
    app = make_app(ops_token=OPS_TOKEN, status_stream_seconds=0.2)
    with run_server(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with http.stream("GET", "/sse/connect", params=params) as visitor:
                visitor_events = SseReader(visitor)
                await visitor_events.next_event()
                headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
                async with http.stream("GET", "/sse/status/stream", headers=headers) as response:
                    assert response.headers["content-type"].startswith("text/event-stream")
                    reader = SseReader(response)
                    first = await reader.next_event()
                    body = function_body("notify", {"clientId": "visitor", "message": "hi"})
                    await http.put("/functions", content=body, headers=signed_headers(body))
                    later = [(await reader.next_event()).data for _ in range(3)]
                    server.call_in_server_loop(app.state.lifecycle.begin_drain)
                    rest = await reader.until_end(timeout=3)
    assert first.event == "status"
    status = first.data
    assert status["status"] == "ok"
    assert status["connections"] == 1 and status["connected_clients"] == 1, status
    assert status["uptime_s"] > 0
    # Review reproduction: the running counters overwrote the summary's "totals" flag.
    assert status["totals"] == "cluster" and status["counters"]["function_calls"] == 0
    assert status["memory"]["rss_bytes"] > 1_000_000
    assert set(status["rates"]) >= {"events_published_per_s", "events_delivered_per_s", "function_calls_per_s"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status["timestamp"])
    assert any(sample["rates"]["function_calls_per_s"] > 0 for sample in later)
    assert any(sample["cpu"]["percent"] is not None for sample in later)
    assert rest[-1].data["status"] == "draining"
    assert reader.retries == [3000]


async def test_ops_page_is_a_self_contained_page_with_a_strict_policy():
    with run_server(make_app(ops_token=OPS_TOKEN)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            page = await http.get("/ops", params={"token": OPS_TOKEN})
            script = await http.get("/ops/assets/ops.js")
            style = await http.get("/ops/assets/ops.css")
            page_source = await http.get("/ops/assets/ops.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert script.status_code == style.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert page_source.status_code == 404  # the page itself is only served behind the token


def test_ops_page_loads_nothing_from_another_origin():
    static = files("channel_app").joinpath("static")
    texts = [static.joinpath("ops.html").read_text()] + [
        static.joinpath("ops", name).read_text() for name in ("ops.js", "ops.css")
    ]
    for text in texts:
        external = [url for url in re.findall(r"(?:https?:)?//[\w.-]+[^\s\"')]*", text) if "www.w3.org/2000/svg" not in url]
        assert external == []


def test_the_status_stream_sends_one_connection_header():
    """Review reproduction: to HTTP/1.0 (or Connection: close) it said both
    `connection: keep-alive` (sse-starlette) and `connection: close` (uvicorn)."""
    with run_server(make_app(app_env="development")) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /sse/status/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            sock.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
    connection_headers = [line for line in head.split(b"\r\n\r\n")[0].lower().split(b"\r\n") if line.startswith(b"connection:")]
    assert connection_headers == [b"connection: close"]

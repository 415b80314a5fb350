"""GET /metrics: what ops read off a running instance, against a real uvicorn."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.http import PUBLISH_KEY, connected_stream, open_stream, publish
from tests.support.scrape import Scrape, scrape
from tests.support.server import run_server
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio


async def call(http: httpx.AsyncClient, method: str, input: dict, signed: bool = True) -> dict:
    body = function_body(method, input)
    headers = signed_headers(body) if signed else {"Content-Type": "application/json"}
    return (await http.put("/functions", content=body, headers=headers)).json()


async def until(condition, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not await condition():
            await anyio.sleep(0.05)


async def test_connects_events_and_calls_are_counted_by_type_method_and_outcome():
    with run_server(make_app()) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with connected_stream(http, params) as reader:
                live = await scrape(server.url)
                assert (await call(http, "notify", {"clientId": "visitor", "message": "hi"}))["result"]
                await reader.next_event()
                assert (await call(http, "notify", {"clientId": "nobody", "message": "hi"}))["error"]
                assert (await call(http, "notify", {"clientId": "visitor", "message": "x"}, signed=False))["error"]
                assert (await call(http, "noSuchMethod", {}))["error"]["type"] == "METHOD_NOT_FOUND"
            await until(lambda: _connections_open(server.url, 0))
        metrics = await scrape(server.url)

    assert live.value("channel_push_connections_open") == 1
    assert live.value("channel_push_clients_connected") == 1
    assert metrics.value("channel_push_connects_total") == 1
    assert metrics.value("channel_push_disconnects_total", reason="client_closed") == 1
    assert metrics.value("channel_push_connection_duration_seconds_count") == 1
    assert metrics.value("channel_push_events_published_total", event="notification") == 2
    assert metrics.value("channel_push_events_delivered_total", event="notification") == 1
    assert metrics.value("channel_push_events_dropped_total", event="notification", reason="not_connected") == 1
    assert metrics.value("channel_push_function_calls_total", method="notify", outcome="ok") == 1
    assert metrics.value("channel_push_function_calls_total", method="notify", outcome="CLIENT_NOT_CONNECTED") == 1
    assert metrics.value("channel_push_function_calls_total", method="none", outcome="UNAUTHORIZED") == 1
    assert metrics.value("channel_push_function_calls_total", method="unknown", outcome="METHOD_NOT_FOUND") == 1
    assert metrics.value("channel_push_function_duration_seconds_count", method="notify") == 2
    # The stream was idle, so its one event was written at publish time, never queued.
    assert metrics.value("channel_push_frames_written_at_publish_total") == 1
    assert metrics.value("channel_push_publish_to_write_seconds_count") == 0
    assert metrics.value("channel_push_broker_up", backend="memory") == 1
    assert metrics.value("channel_push_draining") == 0
    assert metrics.has("process_resident_memory_bytes")


async def _connections_open(url: str, expected: float) -> bool:
    return (await scrape(url)).value("channel_push_connections_open") == expected


async def test_refused_connects_are_counted_by_reason():
    with run_server(make_app(max_connections_per_client=1)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await http.get("/sse/connect", params={"clientId": "visitor", "token": "garbage"})
            await http.get("/sse/connect", params={"clientId": "victim", "token": client_token("attacker")})
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with connected_stream(http, params) as reader:
                assert (await http.get("/sse/connect", params=params)).status_code == 429
        metrics = await scrape(server.url)
    assert metrics.value("channel_push_connects_refused_total", reason="invalid_token") == 1
    assert metrics.value("channel_push_connects_refused_total", reason="forbidden") == 1
    assert metrics.value("channel_push_connects_refused_total", reason="client_connection_limit") == 1


@pytest.mark.parametrize(
    ("overrides", "token_ttl", "reason"),
    [({}, 1.0, "token_expired"), ({"max_stream_seconds": 1.0}, 600, "max_lifetime")],
    ids=["token-expiry", "max-lifetime"],
)
async def test_stream_deadline_is_counted_as_token_expired_or_max_lifetime(overrides, token_ttl, reason):
    with run_server(make_app(**overrides)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            params = {"clientId": "visitor", "token": client_token("visitor", ttl_seconds=token_ttl)}
            async with http.stream("GET", "/sse/connect", params=params) as response:
                await SseReader(response).until_end(timeout=5)
            await until(lambda: _connections_open(server.url, 0))
        metrics = await scrape(server.url)
    assert metrics.value("channel_push_disconnects_total", reason=reason) == 1
    assert metrics.value("channel_push_disconnects_total", reason="client_closed") == 0


async def test_drain_is_counted_as_shutdown():
    with run_server(make_app()) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with connected_stream(http, params) as reader:
                server.call_in_server_loop(server.app.state.lifecycle.begin_drain)
                await reader.until_end(timeout=3)
            await until(lambda: _connections_open(server.url, 0))
        metrics = await scrape(server.url)
    assert metrics.value("channel_push_disconnects_total", reason="shutdown") == 1
    assert metrics.value("channel_push_draining") == 1


async def test_connects_over_the_rate_limit_are_counted():
    with run_server(make_app(rate_limit_connect_per_client="1/minute")) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with connected_stream(http, params):
                pass
            assert (await http.get("/sse/connect", params=params)).status_code == 429
        metrics = await scrape(server.url)
    assert metrics.value("channel_push_rate_limited_total", scope="connect_client") == 1
    assert metrics.value("channel_push_connects_refused_total", reason="rate_limited") == 1


async def test_rate_limit_rejections_are_counted_by_scope():
    with run_server(make_app()) as server:
        server.app.state.metrics.rate_limited("connect_ip")
        server.app.state.metrics.rate_limited("function_channel")
        metrics = await scrape(server.url)
    assert metrics.value("channel_push_rate_limited_total", scope="connect_ip") == 1
    assert metrics.value("channel_push_rate_limited_total", scope="function_channel") == 1
    assert metrics.has("channel_push_rate_limited_total", scope="connect_client")


def test_two_apps_in_one_process_keep_separate_counters():
    first, second = make_app(), make_app()
    first.state.metrics.rate_limited("connect_ip")
    assert Scrape(first.state.metrics.render().decode()).value("channel_push_rate_limited_total", scope="connect_ip") == 1
    assert Scrape(second.state.metrics.render().decode()).value("channel_push_rate_limited_total", scope="connect_ip") == 0


async def test_metrics_require_the_ops_token_when_it_is_set():
    with run_server(make_app(ops_token="ops-secret-token")) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401
            assert wrong.json()["error"]["type"] == "UNAUTHORIZED"
            by_header = await http.get("/metrics", headers={"Authorization": "Bearer ops-secret-token"})
            by_query = await http.get("/metrics", params={"token": "ops-secret-token"})
    assert by_header.status_code == by_query.status_code == 200
    assert by_header.headers["content-type"].startswith("text/plain")


async def test_metrics_are_open_when_no_ops_token_is_set():
    with run_server(make_app()) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/metrics")).status_code == 200


async def test_publish_api_event_names_are_labelled_only_when_listed():
    """Threat: a backend naming events per order (`order-1`, `order-2`, ...) would add a
    label series per name, growing memory and every scrape without bound."""
    app = make_app(publish_api_keys=PUBLISH_KEY, metrics_event_names="order.shipped")
    with run_server(app) as server:
        async with open_stream(server.url, "user-42") as (reader, _):
            for name in ("order-1", "order-2", "order.shipped"):
                response = await publish(server.url, {"target": {"clientId": "user-42"}, "event": name})
                assert response.json()["delivered"] == 1
                assert (await reader.next_event()).event == name
        metrics = await scrape(server.url)
    assert metrics.value("channel_push_events_published_total", event="other") == 2
    assert metrics.value("channel_push_events_delivered_total", event="other") == 2
    assert metrics.value("channel_push_events_published_total", event="order.shipped") == 1
    assert not metrics.has("channel_push_events_published_total", event="order-1")

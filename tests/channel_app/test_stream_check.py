"""GET /sse/check answers what GET /sse/connect would, without opening a stream."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.server import run_server
from tests.support.sse_client import SseReader
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def server():
    app = make_app(max_connections_per_client=1, cors_allowed_origins=["https://shop.example.com"])
    with run_server(app) as running:
        yield running


async def check(server, client_id: str, token: str | None, **headers: str) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.get("/sse/check", params={"clientId": client_id}, headers=headers)


async def test_check_with_good_token_is_200_and_not_cached(server):
    response = await check(server, "visitor", client_token("visitor"))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "clientId": "visitor"}
    assert response.headers["cache-control"] == "no-store"


async def test_check_with_expired_token_is_401_so_the_widget_fetches_a_new_one(server):
    response = await check(server, "visitor", client_token("visitor", 60, now=time.time() - 600))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "INVALID_TOKEN"


async def test_check_without_token_is_401(server):
    assert (await check(server, "visitor", None)).status_code == 401


async def test_check_with_token_for_another_client_is_403(server):
    assert (await check(server, "victim", client_token("attacker"))).status_code == 403


async def test_check_with_invalid_client_id_is_400(server):
    assert (await check(server, "a b", client_token("a b"))).status_code == 400


async def test_check_when_the_client_has_all_its_tabs_open_is_429_with_readable_retry_after(server):
    token = client_token("visitor")
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with http.stream("GET", "/sse/connect", params={"clientId": "visitor", "token": token}) as stream:
            reader = SseReader(stream)  # kept referenced: a collected reader closes its stream
            await reader.next_event()
            response = await check(server, "visitor", token, Origin="https://shop.example.com")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()


async def test_check_does_not_take_a_connection_slot(server):
    token = client_token("visitor")
    for _ in range(3):
        assert (await check(server, "visitor", token)).status_code == 200
    async with httpx.AsyncClient(base_url=server.url) as http:
        status = (await http.get("/sse/status")).json()
    assert status["connections"] == 0


@pytest.mark.redis
async def test_with_redis_the_tab_cap_counts_every_instance(redis_server, redis_url):
    # A tab open on instance a fills a cap of 1: instance b's check and connect say 429.
    settings = {"redis_url": redis_url, "max_connections_per_client": 1, "redis_timeout_seconds": 0.5}
    token = client_token("visitor")
    with run_server(make_app(instance_id="a", **settings)) as a, run_server(make_app(instance_id="b", **settings)) as b:
        async with httpx.AsyncClient(base_url=a.url) as http:
            async with http.stream("GET", "/sse/connect", params={"clientId": "visitor", "token": token}) as stream:
                reader = SseReader(stream)  # kept referenced: a collected reader closes its stream
                await reader.next_event()
                refused_check = await check(b, "visitor", token)
                async with httpx.AsyncClient(base_url=b.url) as other:
                    refused_connect = await other.get("/sse/connect", params={"clientId": "visitor", "token": token})
        assert (refused_check.status_code, refused_check.json()["error"]["type"]) == (429, "CLIENT_CONNECTION_LIMIT")
        assert (refused_connect.status_code, refused_connect.json()["error"]["type"]) == (429, "CLIENT_CONNECTION_LIMIT")
        async with httpx.AsyncClient(base_url=b.url) as http:
            metrics = (await http.get("/metrics")).text
        assert 'channel_push_disconnects_total{reason="client_connection_limit"} 1.0' in metrics
        assert 'channel_push_disconnects_total{reason="client_closed"} 0.0' in metrics
        async def admitted_again() -> bool:  # once a has seen its tab close
            return (await check(b, "visitor", token)).status_code == 200

        await eventually(admitted_again)
        redis_server.stop()
        try:
            unreachable = await check(b, "visitor", token)
        finally:
            redis_server.start()
    assert (unreachable.status_code, unreachable.json()["error"]["type"]) == (503, "UNAVAILABLE")
    assert unreachable.headers["retry-after"] == "3"


async def test_check_reports_the_connect_rate_limit_with_its_retry_after_and_spends_none_of_it():
    """The widget asks here after a refused connect and backs off by Retry-After.
    The check answered 200 while connects were rate-limited, so the widget retried
    at its own pace through the whole window (25 refused connects in one review run)."""
    with run_server(make_app(rate_limit_connect_per_client="2/minute")) as server:
        token = client_token("visitor")
        for _ in range(5):
            assert (await check(server, "visitor", token)).status_code == 200  # asking spends nothing
        async with httpx.AsyncClient(base_url=server.url) as http:
            for _ in range(2):
                async with http.stream("GET", "/sse/connect", params={"clientId": "visitor", "token": token}) as stream:
                    assert stream.status_code == 200
            refused = await http.get("/sse/connect", params={"clientId": "visitor", "token": token})
        assert refused.status_code == 429
        answer = await check(server, "visitor", token)
    assert (answer.status_code, answer.json()["error"]["type"]) == (429, "RATE_LIMITED")
    assert 1 <= int(answer.headers["retry-after"]) <= 30

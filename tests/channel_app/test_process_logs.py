"""Threat: credentials copied into logs, where far more people can read them than
should (log shippers, dashboards, support tickets).

A real process at LOG_LEVEL=debug with JSON logs serves a signed function call
that also carries a token in its query string, a browser stream opened with a
JWT in the query, and the ops endpoints opened with the ops token in the
query. No secret, token, signature or query string may appear anywhere in what
it writes; the structured lines ops rely on must.
"""

from __future__ import annotations

import signal

import anyio
import httpx
import pytest

from tests.support.apps import client_token
from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX, function_body, signed_headers
from tests.support.processes import production_service
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio

OPS_TOKEN = "ops-token-that-must-not-be-logged-4711"
QUERY_TOKEN = "query-token-that-must-not-be-logged-0815"


async def test_logs_carry_calls_and_connections_but_no_credentials_or_query_strings(tmp_path):
    jwt = client_token("visitor")
    with production_service(tmp_path, LOG_LEVEL="debug", OPS_TOKEN=OPS_TOKEN) as service:
        async with httpx.AsyncClient(base_url=service.url) as http:
            params = {"clientId": "visitor", "token": jwt, "lastEventId": "1-0"}
            async with http.stream("GET", "/sse/connect", params=params) as stream:
                reader = SseReader(stream)
                await reader.next_event()
                body = function_body("notify", {"clientId": "visitor", "message": "안녕하세요"})
                headers = signed_headers(body)
                answer = await http.put("/functions", params={"token": QUERY_TOKEN}, content=body, headers=headers)
                assert answer.json()["result"]["delivered"] == 1
                await reader.next_event()
            unsigned = await http.put("/functions", params={"token": QUERY_TOKEN}, content=body, headers={"X-Signature": "Zm9yZ2Vk"})
            assert unsigned.status_code == 401
            assert (await http.get("/metrics", params={"token": OPS_TOKEN})).status_code == 200
            assert (await http.get("/ops", params={"token": OPS_TOKEN})).status_code == 200
        service.process.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(lambda: service.process.wait(timeout=10)) == 0
        text = service.log_text()
        records = service.log_records()  # every line is JSON

    for secret in (jwt, headers["X-Signature"], "Zm9yZ2Vk", QUERY_TOKEN, OPS_TOKEN, SIGNING_KEY_HEX, CLIENT_JWT_SECRET):
        assert secret not in text
    assert "token=" not in text and "?" not in "".join(str(r.get("path", "")) for r in records)
    calls = [r for r in records if r["message"] == "function call"]
    assert {(r["method"], r["outcome"], r["http_status"]) for r in calls} == {
        ("notify", "ok", 200),
        (None, "UNAUTHORIZED", 401),
    }
    ok = next(r for r in calls if r["outcome"] == "ok")
    assert ok["channel_id"] == "channel-1" and ok["caller_type"] == "manager" and ok["client_id"] == "visitor"
    assert ok["duration_ms"] >= 0
    connects = [r for r in records if r["message"] in ("sse connect", "sse disconnect")]
    assert [r["message"] for r in connects] == ["sse connect", "sse disconnect"]
    assert connects[1]["reason"] == "client_closed" and connects[1]["duration_ms"] > 0
    assert connects[0]["connection_id"] == connects[1]["connection_id"]

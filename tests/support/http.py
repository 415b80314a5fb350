"""Talking to a running server (in-process or a subprocess) by its base URL."""

from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator

import httpx

from tests.support.apps import client_token
from tests.support.channel import function_body, signed_headers
from tests.support.sse_client import ReceivedEvent, SseReader


async def call_function(base_url: str, method: str, input: dict[str, Any], **context: Any) -> dict[str, Any]:
    """A signed PUT /functions; returns the JSON body (asserting HTTP 200)."""
    body = function_body(method, input, **context)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    return response.json()


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str, client_id: str, last_event_id: str | None = None, topics: tuple[str, ...] = ()
) -> AsyncIterator[tuple[SseReader, ReceivedEvent]]:
    """An open event stream and its `connected` event; with `topics`, the token allows exactly those."""
    params = {"clientId": client_id, "token": client_token(client_id, topics=topics)}
    if topics:
        params["topics"] = ",".join(topics)
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=30)) as http:
        async with http.stream("GET", "/sse/connect", params=params, headers=headers) as response:
            assert response.status_code == 200
            reader = SseReader(response)
            connected = await reader.next_event()
            assert connected.event == "connected", connected
            yield reader, connected


@contextlib.asynccontextmanager
async def connected_stream(http: httpx.AsyncClient, params: dict[str, str]) -> AsyncIterator[SseReader]:
    """GET /sse/connect with `params` on an open client, already past its `connected` event.

    Bind the reader (`as reader`) for as long as the stream should stay open: a
    collected reader closes its stream."""
    async with http.stream("GET", "/sse/connect", params=params) as response:
        reader = SseReader(response)
        await reader.next_event()
        yield reader


PUBLISH_KEY = "publish-key-for-tests-0123456789"


async def publish(base_url: str, body: Any, key: str | None = PUBLISH_KEY, **headers: str) -> httpx.Response:
    """POST /api/publish with the test API key (as X-API-Key) unless told otherwise."""
    sent = {"X-API-Key": key} if key else {}
    sent.update(headers)
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        return await http.post("/api/publish", content=content, headers={"Content-Type": "application/json", **sent})


async def get_json(base_url: str, path: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.get(path)
    return response.status_code, response.json()

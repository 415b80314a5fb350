"""Threat: a flood spread over several instances behind a load balancer.

With REDIS_URL set, every instance counts against the same budget in Redis,
so spreading calls or connects across instances does not multiply the limit.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.support.asgi import asgi_client
from tests.support.channel import function_body, signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_call_budget_is_shared_by_two_instances_on_one_redis(redis_url):
    settings = {"redis_url": redis_url, "rate_limit_function_per_channel": "4/minute"}
    async with contextlib.AsyncExitStack() as stack:
        instances = [await stack.enter_async_context(asgi_client(**settings, instance_id=name)) for name in ("a", "b")]
        outcomes = []
        for index in range(6):
            body = function_body("getClientStatus", {"clientId": f"c{index}"})
            answer = (await instances[index % 2].put("/functions", content=body, headers=signed_headers(body))).json()
            outcomes.append("ok" if "result" in answer else answer["error"]["type"])
    assert outcomes == ["ok", "ok", "ok", "ok", "RATE_LIMITED", "RATE_LIMITED"]


async def test_connect_budget_per_ip_is_shared_by_two_instances(redis_url):
    settings = {"redis_url": redis_url, "rate_limit_connect_per_ip": "2/minute"}
    async with contextlib.AsyncExitStack() as stack:
        instances = [await stack.enter_async_context(asgi_client(**settings, instance_id=name)) for name in ("a", "b")]
        statuses = [(await instances[index % 2].get("/sse/connect", params={"clientId": "v"})).status_code for index in range(4)]
    assert statuses == [401, 401, 429, 429]

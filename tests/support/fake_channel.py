"""Test doubles for Channel's native API: a fake Channel behind respx, a fake clock."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import respx

BASE_URL = "https://channel.test"
FUNCTIONS_PATH = "/general/v1/native/functions"
APP_SECRET = "app-secret-value"


class FakeClock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    body: dict[str, Any]
    token: str | None
    request: httpx.Request


Reply = httpx.Response | Exception | Callable[[httpx.Request], Any]


class FakeChannel:
    """Answers native calls from per-method queues; the last reply repeats."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.calls: list[Call] = []
        self._replies: dict[str, list[Reply]] = {}
        router.put(FUNCTIONS_PATH).mock(side_effect=self._handle)

    def on(self, method: str, *replies: Reply) -> None:
        self._replies.setdefault(method, []).extend(replies)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        call = Call(body["method"], body["params"], body, request.headers.get("x-access-token"), request)
        self.calls.append(call)
        queue = self._replies.get(call.method)
        if not queue:
            raise AssertionError(f"unexpected native call {call.method}")
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            reply = reply(request)
            if inspect.isawaitable(reply):
                reply = await reply
        return reply


def ok(result: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"result": result})


def token_reply(access: str, refresh: str = "refresh-1", expires_in: int = 1800) -> httpx.Response:
    return ok({"accessToken": access, "refreshToken": refresh, "expiresIn": expires_in})



"""Reading a request body within its size and time limits (channel_app/body.py,
channel_app/body_deadlines.py), driven with hand-made ASGI messages.

The slowloris case over a real socket is in
tests/security/test_function_call_hardening.py."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from channel_app.body import UnreadableBody, read_limited_body
from channel_app.body_deadlines import BodyDeadlines

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def request_with(messages: list[dict], content_length: str | None = None, then_wait: bool = False) -> Request:
    """A request whose `receive` hands out `messages`, then waits forever if `then_wait`."""
    headers = [] if content_length is None else [(b"content-length", content_length.encode())]
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            await asyncio.sleep(0)
            return pending.pop(0)
        if then_wait:
            await asyncio.Event().wait()
        raise AssertionError("read past the last message")

    return Request({"type": "http", "method": "PUT", "path": "/", "headers": headers, "query_string": b""}, receive)


def body_message(data: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": data, "more_body": more}


async def refusal(request: Request, limit: int = 100, deadlines: BodyDeadlines | None = None) -> tuple[int, str]:
    with pytest.raises(UnreadableBody) as refused:
        await read_limited_body(request, limit, deadlines or BodyDeadlines(10))
    return refused.value.status, refused.value.error_type


async def test_a_body_in_one_message_or_many_is_read_whole() -> None:
    deadlines = BodyDeadlines(10)

    assert await read_limited_body(request_with([body_message(b"abc")]), 100, deadlines) == b"abc"
    chunks = [body_message(b"ab", more=True), body_message(b"", more=True), body_message(b"cd")]
    assert await read_limited_body(request_with(chunks), 100, deadlines) == b"abcd"
    assert await read_limited_body(request_with([{"type": "http.request"}]), 100, deadlines) == b""
    assert deadlines.reading == 0


async def test_too_large_by_header_by_one_message_or_by_the_sum_of_many_is_413() -> None:
    assert await refusal(request_with([], content_length="101")) == (413, "PAYLOAD_TOO_LARGE")
    assert await refusal(request_with([body_message(b"x" * 101)])) == (413, "PAYLOAD_TOO_LARGE")
    many = [body_message(b"x" * 60, more=True), body_message(b"x" * 60, more=True)]
    assert await refusal(request_with(many, content_length="10")) == (413, "PAYLOAD_TOO_LARGE")


async def test_a_client_leaving_before_its_body_is_400() -> None:
    leaving = [body_message(b"ab", more=True), {"type": "http.disconnect"}]
    assert await refusal(request_with(leaving)) == (400, "BAD_REQUEST")


async def test_a_body_still_missing_when_the_sweep_passes_its_deadline_is_408() -> None:
    now = [0.0]
    deadlines = BodyDeadlines(5, clock=lambda: now[0])
    reading = asyncio.ensure_future(refusal(request_with([body_message(b"a", more=True)], then_wait=True), deadlines=deadlines))
    await asyncio.sleep(0.01)

    now[0] = 4.9
    assert deadlines.cancel_overdue() == 0
    now[0] = 5.0
    assert deadlines.cancel_overdue() == 1

    assert await reading == (408, "REQUEST_TIMEOUT")
    assert deadlines.reading == 0
    assert not reading.cancelled()


async def test_a_read_cancelled_by_anything_but_the_sweep_stays_cancelled() -> None:
    deadlines = BodyDeadlines(5)
    reading = asyncio.ensure_future(read_limited_body(request_with([], then_wait=True), 100, deadlines))
    await asyncio.sleep(0.01)

    reading.cancel()

    with pytest.raises(asyncio.CancelledError):
        await reading
    assert deadlines.reading == 0


async def test_the_sweep_refuses_a_late_body_within_a_quarter_of_the_timeout() -> None:
    deadlines = BodyDeadlines(0.2)
    sweep = asyncio.ensure_future(deadlines.sweep_forever())
    try:
        started = asyncio.get_running_loop().time()
        assert await refusal(request_with([], then_wait=True), deadlines=deadlines) == (408, "REQUEST_TIMEOUT")
        assert 0.2 <= asyncio.get_running_loop().time() - started < 1.0
    finally:
        sweep.cancel()


async def test_reading_a_body_sets_no_timer_of_its_own(monkeypatch) -> None:
    """A timer per request (asyncio.timeout: 11 us, a bare uvloop call_at: 6 us)
    was a tenth of a function call's own CPU; the sweep replaces it."""
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at
    monkeypatch.setattr(loop, "call_at", lambda when, *args, **kwargs: timers.append(when) or call_at(when, *args, **kwargs))

    assert await read_limited_body(request_with([body_message(b"abc")]), 100, BodyDeadlines(10)) == b"abc"

    assert timers == []

"""Brokers for contract tests, and reading what a subscription receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from sse.broker import Broker, Delivery, make_broker
from sse.events import Event
from sse.registry import Connection
from tests.support.apps import make_settings


@dataclass(frozen=True)
class Frame:
    id: str
    event: str
    data: Any


def parse_frame(frame: bytes) -> Frame:
    fields = dict(line.split(": ", 1) for line in frame.decode().strip("\n").split("\n"))
    return Frame(fields["id"], fields["event"], json.loads(fields["data"]))


def note(text: str) -> Event:
    return Event("notification", {"message": text})


@asynccontextmanager
async def running_broker(**overrides: Any) -> AsyncIterator[Broker]:
    broker = make_broker(make_settings(**overrides))
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def next_frame(connection: Connection, timeout: float = 3.0) -> Frame:
    """The next event frame on a connection, skipping heartbeat comments."""
    while True:
        frame = await asyncio.wait_for(connection.next_frame(), timeout)
        if frame is None:
            raise EOFError(f"connection closed: {connection.close_reason}")
        if frame.startswith(b"id: "):
            return parse_frame(frame)


async def nothing_arrives(connection: Connection, within: float = 0.3) -> bool:
    try:
        frame = await next_frame(connection, within)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected frame {frame}")


async def no_subscriber(admin: Redis, channel: str) -> bool:
    return (await admin.pubsub_numsub(channel)) == [(channel.encode(), 0)]


async def assert_resumes_meet_live_events(
    broker: Broker, publish_next: Callable[[int], Awaitable[Delivery]], count: int, topics: tuple[str, ...] = ()
) -> None:
    """Resume again and again while `publish_next(n)` keeps publishing (n = 0 .. count-1):
    each resumed stream gets every event after its Last-Event-ID once, in order.

    A steady stream, read all along, keeps "alice" connected between resumes. An
    unread one was dropped as a slow client after a queue's worth of events, and
    an event published while no stream was open reaches nobody: it gets no id
    (it is not kept for replay), which made the test flaky."""
    published: list[str] = []

    async def publish_steadily() -> None:
        for n in range(count):
            event_id = (await publish_next(n)).event_id
            assert event_id is not None, f"event {n} reached nobody"
            published.append(event_id)
            await asyncio.sleep(0)

    async with broker.subscribe("alice", None, topics) as steady:
        reader = asyncio.create_task(_read_everything(steady.connection))
        try:
            await _resume_repeatedly(broker, publish_steadily, published, topics)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read_everything(connection: Connection) -> None:
    while await connection.next_frames() is not None:
        pass


async def _resume_repeatedly(
    broker: Broker, publish_steadily: Callable[[], Awaitable[None]], published: list[str], topics: tuple[str, ...]
) -> None:
    publisher = asyncio.create_task(publish_steadily())
    try:
        for _ in range(8):
            while len(published) < 3:
                await asyncio.sleep(0.001)
            resume_from = published[-2]
            async with broker.subscribe("alice", resume_from, topics) as resumed:
                received = [parse_frame(frame).id for frame in resumed.replay]
                while len(received) < 20:
                    received.append((await next_frame(resumed.connection)).id)
            start = published.index(resume_from) + 1
            assert received[:20] == published[start : start + 20]
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher

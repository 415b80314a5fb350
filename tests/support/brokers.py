"""Brokers for contract tests, and reading what a subscription receives."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from sse.broker import Broker, make_broker
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

"""A small SSE parser over an httpx streaming response, for tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import anyio
import httpx


@dataclass
class ReceivedEvent:
    event: str = "message"
    id: str | None = None
    data_lines: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def data(self) -> Any:
        return json.loads("\n".join(self.data_lines))


class SseReader:
    """Keep a reference while the stream should stay open: when the reader is
    garbage-collected its line iterator closes the response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self.retries: list[int] = []
        self._lines: AsyncIterator[str] = response.aiter_lines()

    async def next_event(self, timeout: float = 5.0) -> ReceivedEvent:
        with anyio.fail_after(timeout):
            current = ReceivedEvent()
            async for line in self._lines:
                if line == "":
                    if current.data_lines:
                        return current
                    current = ReceivedEvent()
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    self.comments.append(value)
                elif name == "event":
                    current.event = value
                elif name == "id":
                    current.id = value
                elif name == "data":
                    current.data_lines.append(value)
                elif name == "retry":
                    self.retries.append(int(value))
            raise EOFError("stream ended")

    async def until_end(self, timeout: float = 5.0) -> list[ReceivedEvent]:
        received = []
        with anyio.fail_after(timeout):
            while True:
                try:
                    received.append(await self.next_event(timeout))
                except EOFError:
                    return received

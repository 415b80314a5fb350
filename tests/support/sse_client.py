"""A small SSE parser over an httpx streaming response, for tests.

A timeout cancels the read, and a cancelled read ends httpx's line iterator
(and with it the stream): a test that expects silence should wait for a
heartbeat comment (`next_comment`) rather than for an event to time out.
"""

from __future__ import annotations

import json
from collections import deque
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
        self._current = ReceivedEvent()
        self._events: deque[ReceivedEvent] = deque()

    async def next_event(self, timeout: float = 5.0) -> ReceivedEvent:
        with anyio.fail_after(timeout):
            while not self._events:
                await self._read_line()
            return self._events.popleft()

    async def next_comment(self, timeout: float = 5.0) -> str:
        """Wait for the next comment (heartbeat); events read meanwhile are kept for next_event."""
        seen = len(self.comments)
        with anyio.fail_after(timeout):
            while len(self.comments) == seen:
                await self._read_line()
            return self.comments[seen]

    async def until_end(self, timeout: float = 5.0) -> list[ReceivedEvent]:
        received = []
        with anyio.fail_after(timeout):
            while True:
                try:
                    received.append(await self.next_event(timeout))
                except EOFError:
                    return received

    async def _read_line(self) -> None:
        try:
            line = await self._lines.__anext__()
        except StopAsyncIteration:
            raise EOFError("stream ended") from None
        if line == "":
            if self._current.data_lines:
                self._events.append(self._current)
            self._current = ReceivedEvent()
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            self.comments.append(value)
        elif name == "event":
            self._current.event = value
        elif name == "id":
            self._current.id = value
        elif name == "data":
            self._current.data_lines.append(value)
        elif name == "retry":
            self.retries.append(int(value))

"""The connections open on this process, by client id and by topic.

A connection is reachable under its client id and under each topic it
subscribed to at connect (`open(..., topics=...)`), through a second index
(`deliver_topic`). Topics never count as clients: totals, status, `close_all`
and `deliver_all` walk the client index only, so each connection once.

Each connection owns a bounded queue of encoded frames. Delivery never waits:
`offer` either queues or the queue is full, in which case that one
connection is dropped as a slow client and the others are untouched.

The queue is a deque plus at most one waiting future, not an `asyncio.Queue`
(two more deques, an Event and a loop lookup on every call): with thousands
of idle streams that is memory and CPU bench measures. The writer takes
everything queued in one chunk, so a burst goes out in one write.

`open()` is an async context manager (sse/registration.py), so a connection
is always unregistered, even when the task serving it is cancelled. An
optional `ConnectionObserver` hears of every open and close (with its
reason); metrics and logs hang there.

While the writer waits idle (nothing queued, no write in flight), `offer`
writes the frame at once through the connection's `write_now`, when the
stream set one (channel_app.immediate_writes): no wake-up, no queue. Frames
keep their order, since the writer has nothing of its own left to write.

Publish-to-write latency of queued frames is sampled without touching the queue's item type:
each connection times at most one queued frame at a time (its *probe*), and
the writer reports the delay when it has written exactly that frame object.
An idle stream therefore times every event; a busy one samples.

(Over 200 lines: Connection and the registry share the offer/close
rules and read best side by side.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from sse.registration import Registration

CLIENT_CLOSED = "client_closed"  # close reason when the stream ended without the server closing it
STALLED_WRITE = "stalled write"  # the cancel message that tells a stream's writer to drop its socket


class ConnectionRefused(Exception):
    """A new connection would exceed a cap; `reason` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Connection:
    __slots__ = (
        "id", "client_id", "topics", "opened_at", "close_reason", "writing_since", "writer", "write_now",
        "_frames", "_limit", "_waiter", "_expiry", "_probe", "_probe_at",
    )

    def __init__(self, connection_id: str, client_id: str, queue_size: int, topics: tuple[str, ...] = ()) -> None:
        self.id = connection_id
        self.client_id = client_id
        self.topics = topics
        self.opened_at = time.time()
        self.close_reason: str | None = None
        # While the task writing this stream is inside a write: when it started
        # (monotonic), so one process-wide sweep finds writes that block too long.
        self.writing_since = 0.0
        self.writer: asyncio.Task | None = None
        # (frame, timed) -> whether it was written; set by the stream once its headers are out.
        self.write_now: Callable[[bytes, bool], bool] | None = None
        self._frames: deque[bytes] = deque()
        self._limit = queue_size
        self._waiter: asyncio.Future[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._probe: bytes | None = None
        self._probe_at = 0.0

    @property
    def pending(self) -> int:
        """Frames queued and not yet taken by the writer."""
        return len(self._frames)

    def offer(self, frame: bytes, timed: bool = True) -> bool:
        """Queue a frame without waiting; a full queue drops this connection.
        `timed=False` keeps frames that were never published (heartbeats) out
        of the publish-to-write sample."""
        if self.close_reason is not None:
            return False
        frames = self._frames
        if not frames and self._waiter is not None and self.write_now is not None:
            if self.write_now(frame, timed):
                return True
            if self.close_reason is not None:
                return False  # the writer found the client gone
        if len(frames) >= self._limit:
            self.close("slow_client")
            # Its writer may be idle, not yet woken, while the socket is already full from
            # an immediate write: then its last write would block until the sweep.
            self.stop_writer()
            return False
        frames.append(frame)
        if timed and self._probe is None:
            self._probe = frame
            self._probe_at = time.monotonic()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def next_frames(self) -> bytes | None:
        """Everything queued so far, as one chunk for one write; None once the
        connection is closed and its last frames were taken."""
        frames = self._frames
        if not frames and not await self._frames_arrived():
            return None
        if len(frames) == 1:
            return frames.popleft()
        chunk = b"".join(frames)
        if self._probe is not None and any(frame is self._probe for frame in frames):
            self._probe = chunk  # the timed frame goes out inside this chunk
        frames.clear()
        return chunk

    async def next_frame(self) -> bytes | None:
        """One frame at a time (for tools and tests); None once closed and drained."""
        if not self._frames and not await self._frames_arrived():
            return None
        return self._frames.popleft()

    def take_pending(self) -> list[bytes]:
        """Remove and return the queued frames without waiting (they will be sent
        some other way, e.g. merged into a replay, so none of them stays timed)."""
        taken = list(self._frames)
        self._frames.clear()
        if self._probe is not None and any(frame is self._probe for frame in taken):
            self._probe = None
        return taken

    async def _frames_arrived(self) -> bool:
        """Wait until a frame is queued (True) or the connection is closed with none left (False)."""
        while not self._frames:
            if self.close_reason is not None:
                return False
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return True

    def written(self, frame: bytes) -> float | None:
        """Called by the writer after each write; seconds since the timed frame
        was queued when the write carried it, else None."""
        if frame is not self._probe:
            return None
        self._probe = None
        return time.monotonic() - self._probe_at

    def close(self, reason: str, farewell: bytes | None = None) -> None:
        """End the stream after the frames already queued, then `farewell`.

        When the queue is full, pending frames are discarded: the client is
        behind anyway and replays them with Last-Event-ID.
        """
        if self.close_reason is not None:
            return
        self.close_reason = reason
        if len(self._frames) >= self._limit:
            self._frames.clear()
        if farewell:
            self._frames.append(farewell)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def stop_stalled_writer(self) -> bool:
        """Cancel the task writing this stream (with STALLED_WRITE) if it is inside a
        write: the stream ends and its socket is dropped now. A client dropped as slow
        would otherwise stay registered (counted by getClientStatus and the tab cap)
        until its blocked write returned or the stall sweep found it."""
        return bool(self.writing_since) and self.stop_writer()

    def stop_writer(self) -> bool:
        """Cancel the task writing this stream (with STALLED_WRITE), writing or not."""
        if self.writer is None:
            return False
        self.writer.cancel(STALLED_WRITE)
        return True

    def close_at(self, deadline: float, reason: str, farewell: bytes | None) -> None:
        delay = max(0.0, deadline - time.time())
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(delay, self.close, reason, farewell)

    def cancel_timers(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()


class ConnectionObserver(Protocol):
    def connection_opened(self, connection: Connection) -> None: ...

    def connection_closed(self, connection: Connection, reason: str) -> None:
        """`reason` is the connection's close reason, or CLIENT_CLOSED."""


@dataclass
class RegistryLimits:
    per_client: int
    total: int
    queue_size: int


class ConnectionRegistry:
    def __init__(self, limits: RegistryLimits, observer: ConnectionObserver | None = None) -> None:
        self._limits = limits
        self._observer = observer
        self._by_client: dict[str, dict[str, Connection]] = {}
        self._by_topic: dict[str, dict[str, Connection]] = {}
        self._total = 0
        self._ids = itertools.count(1)
        self._id_prefix = f"{int(time.time() * 1000):x}"

    @property
    def connection_total(self) -> int:
        return self._total

    @property
    def client_total(self) -> int:
        return len(self._by_client)

    def connection_count(self, client_id: str) -> int:
        return len(self._by_client.get(client_id, ()))

    def client_ids(self) -> Iterable[str]:
        return self._by_client.keys()

    def connections_of(self, client_id: str) -> list[Connection]:
        return list(self._by_client.get(client_id, {}).values())

    def topic_connection_count(self, topic: str) -> int:
        return len(self._by_topic.get(topic, ()))

    def topics(self) -> Iterable[str]:
        return self._by_topic.keys()

    def topic_connections(self, topic: str) -> list[Connection]:
        return list(self._by_topic.get(topic, {}).values())

    def open(
        self,
        client_id: str,
        on_last: Callable[[str], object] | None = None,
        topics: tuple[str, ...] = (),
        on_last_topic: Callable[[str], object] | None = None,
    ) -> Registration:
        """`async with registry.open(...) as connection:` registers a connection for
        the block. `on_last` fires when a client loses its last local connection
        (the Redis broker unsubscribes there), `on_last_topic` when a topic loses
        its last local listener."""
        return Registration(self, client_id, topics, on_last, on_last_topic)

    def enter(self, client_id: str, topics: tuple[str, ...] = ()) -> Connection:
        """Register a connection (raises ConnectionRefused); `open` pairs it with `leave`."""
        connection = self._register(client_id, topics)
        if self._observer is not None:
            self._observer.connection_opened(connection)
        return connection

    async def leave(
        self,
        connection: Connection,
        on_last: Callable[[str], object] | None = None,
        on_last_topic: Callable[[str], object] | None = None,
    ) -> None:
        connection.cancel_timers()
        last = self._unregister(connection)
        if self._observer is not None:
            self._observer.connection_closed(connection, connection.close_reason or CLIENT_CLOSED)
        if last and on_last is not None:
            await _maybe_await(on_last(connection.client_id))
        if on_last_topic is not None:
            for topic in connection.topics:
                if topic not in self._by_topic:
                    await _maybe_await(on_last_topic(topic))

    def connections(self) -> Iterator[Connection]:
        for connections in list(self._by_client.values()):
            yield from list(connections.values())

    def deliver(self, client_id: str, frame: bytes) -> int:
        connections = self._by_client.get(client_id)
        if not connections:
            return 0
        return sum(1 for connection in list(connections.values()) if connection.offer(frame))

    def deliver_topic(self, topic: str, frame: bytes) -> int:
        connections = self._by_topic.get(topic)
        if not connections:
            return 0
        return sum(1 for connection in list(connections.values()) if connection.offer(frame))

    def deliver_all(self, frame: bytes) -> int:
        delivered = 0
        for connections in list(self._by_client.values()):
            for connection in list(connections.values()):
                delivered += connection.offer(frame)
        return delivered

    def close_all(self, reason: str, farewell: bytes | None = None) -> int:
        closed = 0
        for connections in list(self._by_client.values()):
            for connection in list(connections.values()):
                connection.close(reason, farewell)
                closed += 1
        return closed

    def _register(self, client_id: str, topics: tuple[str, ...]) -> Connection:
        if self._total >= self._limits.total:
            raise ConnectionRefused("instance_full", "this instance holds its maximum number of connections")
        connections = self._by_client.setdefault(client_id, {})
        if len(connections) >= self._limits.per_client:
            if not connections:
                del self._by_client[client_id]
            raise ConnectionRefused(
                "client_connection_limit",
                f"clientId already has {self._limits.per_client} open connections",
            )
        connection = Connection(f"{self._id_prefix}-{next(self._ids)}", client_id, self._limits.queue_size, topics)
        connections[connection.id] = connection
        for topic in topics:
            self._by_topic.setdefault(topic, {})[connection.id] = connection
        self._total += 1
        return connection

    def _unregister(self, connection: Connection) -> bool:
        """Remove the connection; True when it was the client's last one here."""
        connections = self._by_client.get(connection.client_id)
        if connections is None or connections.pop(connection.id, None) is None:
            return False
        self._total -= 1
        for topic in connection.topics:
            listeners = self._by_topic.get(topic)
            if listeners is not None:
                listeners.pop(connection.id, None)
                if not listeners:
                    del self._by_topic[topic]
        if connections:
            return False
        del self._by_client[connection.client_id]
        return True


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value

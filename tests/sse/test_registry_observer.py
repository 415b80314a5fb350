"""The registry reports every connection's start and end, with the reason it ended,
and samples how long queued frames wait before they are written."""

from __future__ import annotations

import pytest

from sse.registry import CLIENT_CLOSED, Connection, ConnectionRefused, ConnectionRegistry, RegistryLimits

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[tuple[str, str]] = []

    def connection_opened(self, connection: Connection) -> None:
        self.opened.append(connection.id)

    def connection_closed(self, connection: Connection, reason: str) -> None:
        self.closed.append((connection.id, reason))


def registry(recorder: Recorder, queue_size: int = 4) -> ConnectionRegistry:
    return ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=queue_size), recorder)


async def test_stream_that_ends_without_a_server_close_is_reported_client_closed():
    recorder = Recorder()
    async with registry(recorder).open("visitor") as connection:
        assert recorder.opened == [connection.id]
    assert recorder.closed == [(connection.id, CLIENT_CLOSED)]


async def test_full_queue_is_reported_as_slow_client():
    recorder = Recorder()
    connections = registry(recorder, queue_size=2)
    async with connections.open("visitor") as connection:
        assert connections.deliver("visitor", b"one") == 1
        assert connections.deliver("visitor", b"two") == 1
        assert connections.deliver("visitor", b"three") == 0
    assert recorder.closed == [(connection.id, "slow_client")]


async def test_close_reason_given_by_the_server_is_reported():
    recorder = Recorder()
    connections = registry(recorder)
    async with connections.open("visitor") as connection:
        connections.close_all("shutdown", b"retry: 3000\n\n")
    assert recorder.closed == [(connection.id, "shutdown")]


async def test_refused_connection_is_neither_opened_nor_closed():
    recorder = Recorder()
    connections = ConnectionRegistry(RegistryLimits(per_client=1, total=10, queue_size=4), recorder)
    async with connections.open("visitor"):
        with pytest.raises(ConnectionRefused):
            async with connections.open("visitor"):
                pass
        assert connections.connection_count("visitor") == 1
    assert len(recorder.opened) == 1
    assert len(recorder.closed) == 1
    assert connections.connection_total == 0


async def test_write_latency_is_reported_for_the_timed_frame_only():
    async with registry(Recorder()).open("visitor") as connection:
        first, second = b"id: 1-0\n\n", b"id: 1-1\n\n"
        connection.offer(first)
        connection.offer(second)  # queued while the first is being timed: not timed itself
        assert connection.written(first) is not None
        assert connection.written(second) is None


async def test_heartbeats_are_not_timed():
    async with registry(Recorder()).open("visitor") as connection:
        heartbeat, event = b": heartbeat\n\n", b"id: 1-0\n\n"
        connection.offer(heartbeat, timed=False)
        connection.offer(event)
        assert connection.written(heartbeat) is None
        assert connection.written(event) is not None


async def test_a_registration_left_twice_is_reported_and_unregistered_once():
    recorder = Recorder()
    connections = registry(recorder)
    last_seen: list[str] = []
    registration = connections.open("visitor", on_last=last_seen.append)
    connection = await registration.__aenter__()
    await registration.__aexit__(None, None, None)
    await registration.__aexit__(None, None, None)
    assert recorder.closed == [(connection.id, CLIENT_CLOSED)]
    assert last_seen == ["visitor"]
    assert connections.connection_total == 0


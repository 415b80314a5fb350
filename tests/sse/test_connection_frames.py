"""A connection's frame queue: what the writer takes, in which chunks, and when it ends."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

import anyio
import pytest

from sse.registry import Connection, ConnectionRegistry, RegistryLimits

pytestmark = pytest.mark.anyio


def registry(queue_size: int = 4) -> ConnectionRegistry:
    return ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=queue_size))


@contextlib.asynccontextmanager
async def writer_waiting(connection: Connection) -> AsyncIterator[list[bytes | None]]:
    """A writer task already waiting for its next chunk; once the block ends, the
    list holds the chunk it took (the block must offer or close to end it)."""
    received: list[bytes | None] = []

    async def take() -> None:
        received.append(await connection.next_frames())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(take)
        await anyio.sleep(0.01)
        yield received


async def test_frames_queued_while_the_writer_was_busy_go_out_as_one_chunk_in_order():
    async with registry().open("visitor") as connection:
        for frame in (b"a\n\n", b"b\n\n", b"c\n\n"):
            connection.offer(frame)
        assert await connection.next_frames() == b"a\n\nb\n\nc\n\n"
        assert connection.pending == 0


async def test_timed_frame_inside_a_chunk_is_reported_when_the_chunk_is_written():
    async with registry().open("visitor") as connection:
        connection.offer(b": heartbeat\n\n", timed=False)
        connection.offer(b"id: 1-0\n\n")
        chunk = await connection.next_frames()
        assert connection.written(chunk) is not None
        assert connection.written(chunk) is None


async def test_writer_waits_for_the_next_frame_and_wakes_on_offer():
    async with registry().open("visitor") as connection:
        async with writer_waiting(connection) as received:
            assert received == []
            connection.offer(b"x\n\n")
        assert received == [b"x\n\n"]


async def test_closed_connection_hands_out_pending_frames_then_the_farewell_then_ends():
    async with registry().open("visitor") as connection:
        connection.offer(b"a\n\n")
        connection.close("shutdown", b"retry: 3000\n\n")
        assert connection.offer(b"late\n\n") is False
        assert await connection.next_frames() == b"a\n\nretry: 3000\n\n"
        assert await connection.next_frames() is None


async def test_full_queue_drops_the_client_and_discards_what_it_had_not_read():
    async with registry(queue_size=2).open("visitor") as connection:
        assert connection.offer(b"a\n\n") and connection.offer(b"b\n\n")
        assert connection.offer(b"c\n\n") is False
        assert connection.close_reason == "slow_client"
        assert await connection.next_frames() is None


async def test_frames_can_be_taken_one_at_a_time():
    async with registry().open("visitor") as connection:
        connection.offer(b"a\n\n")
        connection.offer(b"b\n\n")
        connection.close("shutdown")
        assert [await connection.next_frame(), await connection.next_frame()] == [b"a\n\n", b"b\n\n"]
        assert await connection.next_frame() is None


async def test_frames_taken_for_a_replay_leave_the_queue_empty_and_untimed():
    async with registry().open("visitor") as connection:
        timed = b"id: 1-0\n\n"
        connection.offer(timed)
        assert connection.take_pending() == [timed]
        assert connection.pending == 0
        assert connection.written(timed) is None
        connection.offer(b"id: 1-1\n\n")
        assert connection.written(await connection.next_frames()) is not None


class WriteRecorder:
    """Stands in for the stream's immediate writer (channel_app.immediate_writes)."""

    def __init__(self, accepts: bool = True) -> None:
        self.accepts = accepts
        self.written: list[tuple[bytes, bool]] = []

    def __call__(self, frame: bytes, timed: bool) -> bool:
        if self.accepts:
            self.written.append((frame, timed))
        return self.accepts


async def test_frame_offered_while_the_writer_waits_idle_is_written_at_once_without_waking_it():
    async with registry().open("visitor") as connection:
        connection.write_now = recorder = WriteRecorder()
        async with writer_waiting(connection) as received:
            assert connection.offer(b"a\n\n") and connection.offer(b": heartbeat\n\n", timed=False)
            await anyio.sleep(0.01)
            assert recorder.written == [(b"a\n\n", True), (b": heartbeat\n\n", False)]
            assert connection.pending == 0 and received == []
            connection.close("shutdown")
        assert received == [None]


async def test_frame_offered_while_the_writer_is_busy_takes_the_queue_to_keep_the_order():
    async with registry().open("visitor") as connection:
        connection.write_now = recorder = WriteRecorder()
        # No writer waiting: it is inside a write (or has not started), so nothing may overtake it.
        assert connection.offer(b"a\n\n")
        assert recorder.written == [] and connection.pending == 1
        assert await connection.next_frames() == b"a\n\n"


async def test_frame_offered_behind_a_queued_one_is_queued_too_even_with_the_writer_waiting():
    async with registry().open("visitor") as connection:
        connection.write_now = recorder = WriteRecorder(accepts=False)
        async with writer_waiting(connection) as received:
            connection.offer(b"a\n\n")  # refused: queued, and the writer is woken but has not run yet
            recorder.accepts = True
            connection.offer(b"b\n\n")
        assert recorder.written == []
        assert received == [b"a\n\nb\n\n"]


async def test_frame_the_immediate_writer_refuses_takes_the_queue_and_wakes_the_writer():
    async with registry().open("visitor") as connection:
        connection.write_now = WriteRecorder(accepts=False)  # e.g. uvicorn paused writing
        async with writer_waiting(connection) as received:
            assert connection.offer(b"a\n\n")
        assert received == [b"a\n\n"]

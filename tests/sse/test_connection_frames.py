"""A connection's frame queue: what the writer takes, in which chunks, and when it ends."""

from __future__ import annotations

import anyio
import pytest

from sse.registry import ConnectionRegistry, RegistryLimits

pytestmark = pytest.mark.anyio


def registry(queue_size: int = 4) -> ConnectionRegistry:
    return ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=queue_size))


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
        async with anyio.create_task_group() as tasks:
            received = []

            async def take() -> None:
                received.append(await connection.next_frames())

            tasks.start_soon(take)
            await anyio.sleep(0.01)
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

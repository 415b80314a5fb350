"""Many small Redis calls sent as a few (sse/batched_calls.py), and its close."""

from __future__ import annotations

import asyncio

import pytest

from sse.batched_calls import BatchedCalls

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_items_added_in_one_moment_go_in_one_call() -> None:
    sent: list[list[str]] = []

    async def send(items: list[str]) -> None:
        sent.append(items)

    calls = BatchedCalls(send, item_size=2, batch_size=10, what="test")
    await asyncio.gather(*(calls.add(f"client-{n}", f"member-{n}") for n in range(3)))
    assert sent == [["client-0", "member-0", "client-1", "member-1", "client-2", "member-2"]]


async def test_close_waits_for_the_batch_on_its_way_and_sends_no_other() -> None:
    """At shutdown the Redis client closes right after: a stream's removal cut by the
    grace left its batch going on, and a batch sent after the close opened a
    connection nobody closed."""
    sent: list[list[str]] = []
    release = asyncio.Event()

    async def send(items: list[str]) -> None:
        sent.append(items)
        await release.wait()

    calls = BatchedCalls(send, item_size=1, batch_size=1, what="test")
    first = asyncio.ensure_future(calls.add("a"))
    second = asyncio.ensure_future(calls.add("b"))
    await asyncio.sleep(0.01)
    first.cancel()  # as the end of the grace cancels a stream waiting for its removal
    closing = asyncio.ensure_future(calls.close())
    await asyncio.sleep(0.01)
    assert not closing.done()  # the batch on its way still runs
    release.set()
    await asyncio.wait_for(closing, 1)
    await asyncio.wait_for(second, 1)
    await calls.add("c")
    assert sent == [["a"]]

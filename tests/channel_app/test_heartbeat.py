"""The heartbeat loop (channel_app/heartbeat.py): every stream once per interval,
in slices spread over it, and broker upkeep after each round."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from channel_app.heartbeat import heartbeat_forever
from sse.events import HEARTBEAT_FRAME

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Stream:
    made = 0

    def __init__(self, heartbeats: list[float], fail: bool = False) -> None:
        self.heartbeats = heartbeats
        self.fail = fail
        Stream.made += 1
        self.id = f"stream-{Stream.made}"

    def offer(self, frame: bytes, timed: bool = True) -> bool:
        assert frame == HEARTBEAT_FRAME and timed is False
        if self.fail:
            raise RuntimeError("a broken stream")
        self.heartbeats.append(asyncio.get_running_loop().time())
        return True


class Registry:
    def __init__(self, streams: list[Stream]) -> None:
        self.streams = streams

    def connections(self):
        return iter(self.streams)


class Broker:
    def __init__(self, streams: list[Stream]) -> None:
        self.registry = Registry(streams)
        self.upkeep: list[float] = []

    async def housekeeping(self) -> None:
        self.upkeep.append(asyncio.get_running_loop().time())


@contextlib.asynccontextmanager
async def beating(broker: Broker, interval: float, step: float):
    loop = asyncio.ensure_future(heartbeat_forever(broker, interval, step))
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_a_round_spreads_its_heartbeats_over_the_interval_in_slices() -> None:
    """All at once, 10,000 streams held the event loop for about 250 ms every
    interval, and every call arriving meanwhile waited that long."""
    written: list[float] = []
    broker = Broker([Stream(written) for _ in range(100)])
    started = asyncio.get_running_loop().time()

    async with beating(broker, interval=0.5, step=0.05):
        await asyncio.sleep(0.6)

    first_round = sorted(written)[:100]
    assert len(written) >= 100
    per_moment = Counter(round(moment - started, 2) for moment in first_round)
    # 100 streams, 10 steps: 10 a step (40 allows a busy machine to run a few late steps together)
    assert len(per_moment) >= 4 and max(per_moment.values()) <= 40
    assert first_round[-1] - started >= 0.45


async def test_each_stream_gets_one_heartbeat_a_round_and_upkeep_follows_each_round() -> None:
    written: list[list[float]] = [[] for _ in range(7)]
    broker = Broker([Stream(moments) for moments in written])

    async with beating(broker, interval=0.2, step=0.05):
        await asyncio.sleep(0.5)

    rounds = len(broker.upkeep)
    assert rounds >= 2
    assert all(rounds <= len(moments) <= rounds + 1 for moments in written)  # +1: the round under way


async def test_a_failing_stream_does_not_stop_the_heartbeats() -> None:
    written: list[float] = []
    broker = Broker([Stream(written, fail=True), Stream(written)])

    async with beating(broker, interval=0.1, step=0.05):
        await asyncio.sleep(0.35)

    assert len(written) >= 2 and len(broker.upkeep) >= 2


async def test_a_slow_upkeep_never_delays_the_heartbeats() -> None:
    """Review reproduction: with Redis stalled, each upkeep (the presence refresh)
    waited REDIS_TIMEOUT_SECONDS before the next round began, so 2 s heartbeats came
    3 s apart, past a load balancer's idle timeout set just above the interval."""
    written: list[float] = []
    broker = Broker([Stream(written)])

    async def stalled() -> None:
        broker.upkeep.append(asyncio.get_running_loop().time())
        await asyncio.sleep(10)

    broker.housekeeping = stalled
    async with beating(broker, interval=0.1, step=0.05):
        await asyncio.sleep(0.55)

    gaps = [later - earlier for earlier, later in zip(written, written[1:])]
    assert len(written) >= 4 and max(gaps) < 0.18
    assert len(broker.upkeep) == 1  # the stalled one still runs: none piles up behind it


async def test_a_stream_keeps_its_slice_when_the_streams_around_it_close() -> None:
    """Review reproduction: a stream's slice was its position in the list, so one at the
    front of 20 moved to the end of the next round when the other 19 closed: nearly two
    intervals of silence, enough for a load balancer timing out idle streams."""
    steps = 20
    mine: list[float] = []
    streams = [Stream(mine)] + [Stream([]) for _ in range(steps - 1)]
    broker = Broker(streams)
    async with beating(broker, interval=1.0, step=1.0 / steps):
        while not mine:
            await asyncio.sleep(0.01)
        broker.registry.streams = streams[:1]  # the others close
        while len(mine) < 3:
            await asyncio.sleep(0.01)
    gaps = [later - earlier for earlier, later in zip(mine, mine[1:])]
    assert all(0.8 <= gap <= 1.2 for gap in gaps), gaps



async def test_a_cancelled_loop_returns_only_once_its_upkeep_has_ended() -> None:
    """Redis closes right after the loop is cancelled at shutdown: an upkeep still
    running would then use a closed client (a new connection left open, which the
    CI run caught as an unclosed transport when the loop closed)."""
    broker = Broker([Stream([])])
    ended = asyncio.Event()

    async def slow_upkeep() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # as a Redis call cut midway tidies its connection
            ended.set()

    broker.housekeeping = slow_upkeep
    async with beating(broker, interval=0.05, step=0.05):
        await asyncio.sleep(0.1)
    assert ended.is_set()

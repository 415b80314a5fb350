"""The publish API's id store, in memory and on a real Redis: a reservation is short,
an answer is kept for the whole retention."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis

from channel_app import idempotency
from channel_app.idempotency import PENDING_SECONDS, MemoryIdempotency, RedisIdempotency
from channel_app.publishing import Outcome
from sse.broker import BrokerUnavailable, PublishFenced
from sse.events import Event
from tests.support.brokers import next_frame, nothing_arrives, running_broker

pytestmark = pytest.mark.anyio

RETENTION = 300.0
ONE_EVENT = Outcome().before_step(sequence=False, last=True)


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_reservation_whose_request_died_unanswered_lapses_long_before_the_retention():
    """A request that dies between reserving its id and answering (process killed,
    release lost to a Redis stall) used to lock retries out for the whole retention."""
    clock = Clock()
    store = MemoryIdempotency(RETENTION, clock=clock)
    assert await store.claim("k", "digest", "a1") is None
    clock.now += PENDING_SECONDS - 1
    assert (await store.claim("k", "digest", "a1")).status is None  # still in progress
    clock.now += 2
    assert await store.claim("k", "digest", "a1") is None  # reserved afresh


async def test_an_answer_is_kept_for_the_whole_retention():
    clock = Clock()
    store = MemoryIdempotency(RETENTION, clock=clock)
    await store.claim("k", "digest", "a1")
    await store.complete("k", "digest", 200, {"delivered": 1})
    clock.now += RETENTION - 1
    assert (await store.claim("k", "digest", "a1")).answer == {"delivered": 1}


@pytest.mark.redis
async def test_on_redis_a_reservation_expires_after_pending_seconds_and_an_answer_after_the_retention(redis):
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    assert await store.claim("k", "digest", "a1") is None
    assert 0 < await redis.pttl("cp:publish-id:k") <= PENDING_SECONDS * 1000
    await store.complete("k", "digest", 200, {"delivered": 1})
    assert PENDING_SECONDS * 1000 < await redis.pttl("cp:publish-id:k") <= RETENTION * 1000


@pytest.mark.redis
@pytest.mark.parametrize("late_publish_runs_first", [True, False])
async def test_a_publish_redis_runs_after_its_caller_gave_up_goes_out_once(redis_url, redis, late_publish_runs_first):
    """A request's publish outlives its wait (the API answered 503 and releases the
    id), and Redis runs the publish and the release in either order. Then the
    retry either gets the late publish's answer or publishes the one event itself."""
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    async with running_broker(redis_url=redis_url) as broker, broker.subscribe("alice", None) as alice:
        event = Event("charge", {"amount": 5})
        assert await store.claim("k", "digest", "first") is None
        late = broker.publish("alice", event, fence=store.fence("k", "digest", "first", ONE_EVENT))
        published = await _late_publish_and_release(store, late, late_publish_runs_first)
        earlier = await store.claim("k", "digest", "retry")
        if late_publish_runs_first:
            assert (earlier.status, earlier.answer) == (200, {"delivered": 1, "queued": False, "eventId": published.event_id})
            event_id = earlier.answer["eventId"]
        else:
            assert earlier is None
            event_id = (await broker.publish("alice", event, fence=store.fence("k", "digest", "retry", ONE_EVENT))).event_id
        assert (await next_frame(alice.connection)).id == event_id
        assert await nothing_arrives(alice.connection, within=0.3)


@pytest.mark.redis
async def test_the_answer_a_fenced_publish_leaves_matches_its_delivery_for_every_target(redis_url, redis):
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    async with running_broker(redis_url=redis_url, allow_broadcast=True) as broker:
        async with broker.subscribe("alice", None, ("promo",)):
            publishes = {
                "client": lambda fence: broker.publish("alice", Event("a", {}), fence=fence),
                "queued": lambda fence: broker.publish("bob", Event("b", {}), True, fence),
                "offline": lambda fence: broker.publish("carol", Event("c", {}), fence=fence),
                "topic": lambda fence: broker.publish_topic("promo", Event("d", {}), fence=fence),
                "nobody": lambda fence: broker.publish_topic("empty", Event("e", {}), fence=fence),
                "all": lambda fence: broker.broadcast(Event("f", {}), fence=fence),
            }
            for name, publish in publishes.items():
                assert await store.claim(name, "digest", "a") is None
                delivery = await publish(store.fence(name, "digest", "a", ONE_EVENT))
                record = await store.claim(name, "digest", "b")
                expected = {"delivered": delivery.delivered, "queued": delivery.queued, "eventId": delivery.event_id}
                assert (record.status, record.answer) == (200, expected), name


@pytest.mark.redis
@pytest.mark.parametrize("late_publish_runs_first", [True, False])
@pytest.mark.parametrize("late_step", [0, 1])
async def test_a_sequence_whose_publish_redis_runs_after_its_caller_gave_up_sends_each_event_once(
    redis_url, redis, late_step, late_publish_runs_first
):
    """A two-event sequence whose `late_step` event outlives the request's wait (503,
    then the release), Redis running that publish and the release in either order.
    The retry gets an answer naming exactly the events that went out, or, when none
    did, publishes the sequence itself. Before, a sequence was not fenced: a first
    event that went out late was published again by the retry, and a second one was
    missing from the recorded answer."""
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    events = [Event("chunk", {"text": "a"}), Event("complete", {})]
    async with running_broker(redis_url=redis_url) as broker, broker.subscribe("alice", None) as alice:

        async def publish(step: int, outcome: Outcome, attempt: str):
            fence = store.fence("k", "digest", attempt, outcome.before_step(sequence=True, last=step == 1))
            return await broker.publish("alice", events[step], fence=fence)

        assert await store.claim("k", "digest", "first") is None
        sent = Outcome()
        for step in range(late_step):
            sent.event_ids.append((await publish(step, sent, "first")).event_id)
        published = await _late_publish_and_release(store, publish(late_step, sent, "first"), late_publish_runs_first)
        if published is not None:
            sent.event_ids.append(published.event_id)
        earlier = await store.claim("k", "digest", "retry")
        if not sent.event_ids:
            assert earlier is None
            for step in range(2):
                sent.event_ids.append((await publish(step, sent, "retry")).event_id)
        elif len(sent.event_ids) == 2:
            assert (earlier.status, earlier.answer["eventIds"]) == (200, sent.event_ids)
        else:
            assert (earlier.status, earlier.answer["error"]["type"], earlier.answer["error"]["eventIds"]) == (
                503, "UNAVAILABLE", sent.event_ids,
            )
        for event_id in sent.event_ids:
            assert (await next_frame(alice.connection)).id == event_id
        assert await nothing_arrives(alice.connection, within=0.3)


@pytest.mark.redis
async def test_a_retry_while_a_sequence_is_still_being_published_is_told_it_is_in_progress(redis_url, redis):
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    async with running_broker(redis_url=redis_url) as broker, broker.subscribe("alice", None):
        assert await store.claim("k", "digest", "first") is None
        first = store.fence("k", "digest", "first", Outcome().before_step(sequence=True, last=False))
        published = await broker.publish("alice", Event("chunk", {}), fence=first)
        assert (await store.claim("k", "digest", "retry")).status is None
        done = Outcome(event_ids=[published.event_id])
        await broker.publish("alice", Event("complete", {}), fence=store.fence("k", "digest", "first", done.before_step(True, True)))
        record = await store.claim("k", "digest", "retry")
        assert (record.status, len(record.answer["eventIds"])) == (200, 2)
        assert PENDING_SECONDS * 1000 < await redis.pttl("cp:publish-id:k")


async def _late_publish_and_release(store: RedisIdempotency, late, late_publish_runs_first: bool):
    """Redis runs request "first"'s late publish and its release in the order given:
    the publish's Delivery, or None when the release came first and fenced it out."""
    if late_publish_runs_first:
        published = await late
        await store.release("k", "digest", "first")
        return published
    await store.release("k", "digest", "first")
    with pytest.raises(PublishFenced):
        await late
    return None


@pytest.mark.redis
async def test_a_sequence_whose_request_died_midway_is_answered_with_what_went_out(redis_url, redis, monkeypatch):
    """Review reproduction: an instance killed after 15 of 100 chunks; the record of
    what went out lapsed with the request's 30 s hold, and the retry 31 s later found
    the id free and sent all 100 again."""
    monkeypatch.setattr(idempotency, "PENDING_SECONDS", 0.3)
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    async with running_broker(redis_url=redis_url) as broker, broker.subscribe("alice", None):
        assert await store.claim("k", "digest", "dead") is None
        fence = store.fence("k", "digest", "dead", Outcome().before_step(sequence=True, last=False))
        published = await broker.publish("alice", Event("chunk", {}), fence=fence)
        assert (await store.claim("k", "digest", "retry")).status is None  # held while the request may live
        await anyio.sleep(0.4)  # it died: no release, no next event
        record = await store.claim("k", "digest", "retry")
    assert (record.status, record.answer["error"]["type"], record.answer["error"]["eventIds"]) == (503, "UNAVAILABLE", [published.event_id])


@pytest.mark.redis
async def test_a_release_redis_did_not_confirm_is_tried_again_so_a_retry_is_not_held_for_long(redis, monkeypatch):
    """Review reproduction: after a 2.5 s Redis stall the request answered 503, its
    release was lost, and retries were refused IN_PROGRESS for the next 30 s."""
    monkeypatch.setattr(idempotency, "RELEASE_RETRY_DELAYS", (0.05, 0.05))
    store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
    assert await store.claim("k-stall", "digest", "first") is None
    release_once, failures = store._release_once, []

    async def stalled_once(*args):
        if not failures:
            failures.append(True)
            raise BrokerUnavailable("Redis did not answer in time")
        await release_once(*args)

    monkeypatch.setattr(store, "_release_once", stalled_once)
    with pytest.raises(BrokerUnavailable):
        await store.release("k-stall", "digest", "first")
    with anyio.fail_after(2):
        while (await store.claim("k-stall", "digest", "retry")) is not None:
            await anyio.sleep(0.02)
    await store.close()

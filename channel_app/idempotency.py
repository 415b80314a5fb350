"""Idempotent publishing: the optional `id` of a publish request.

A backend that retries a publish (timeout, crash) sends the same `id`; within
the retention (the longer of HISTORY_TTL_SECONDS and QUEUE_TTL_SECONDS) the
second request publishes nothing and gets the first answer again. An id is
scoped to its publisher (API key fingerprint or JWT subject), and bound to the
request body: the same id with a different body is refused, since it is
surely a bug. A request whose id is still being answered is refused too
(409), rather than published twice.

`claim` reserves the id (or returns the stored record); `complete` stores the
answer; `release` frees the id when nothing was published (e.g. Redis was
unreachable), so a retry can go ahead.

On Redis a publish can outlive the request's wait for it: a script Redis is
running (or has run, its answer still on the way) when REDIS_TIMEOUT_SECONDS
ends takes effect although the request answers 503. So each request holds the
id with a value of its own (`attempt`), and publishes each event behind a
`fence` (sse.broker.Fence): the script publishes only while the id is still
held by that request, and writes the event's answer there in the same step.
An event with more of its sequence to follow leaves a record that keeps the
hold (a concurrent retry is told IN_PROGRESS); the last event's record is the
request's answer. `release` lets go of the id: the reservation, if no event
went out, is deleted; a record of events that did go out becomes the answer
(`publishing.answer_after`: the events up to it, as a 503 UNAVAILABLE when
more were to follow). Whichever of a late publish and the release Redis runs
first, each event goes out once: before the release, its record is there for
the retry; after it, it publishes nothing. The answer the request itself gave
(503) may list one event fewer than its record, when the event it stopped
waiting for went out after all.

A reservation lasts PENDING_SECONDS, not the whole retention: should its
release be lost too (Redis stalled, the process died mid-request), retries are
refused as in progress for half a minute, not for minutes. A release that
Redis did not confirm is tried again in the background for a few seconds
(RELEASE_RETRY_DELAYS), so after a short stall a retry is answered at once
(review reproduction: a 2.5 s stall, the request answered 503, and retries
were refused IN_PROGRESS for the next 30 s). A record of events
that went out keeps the retention and holds the id only until PENDING_SECONDS
after it was written (`until`): if the request died mid-sequence, a later retry
gets it as the answer (the events that went out, 503) rather than finding the
id free and publishing the whole sequence again (review reproduction: an
instance killed after 15 of 100 chunks; the retry 31 s later sent all 100). Memory store for
one process, Redis store (`SET NX PX`) for several instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import orjson
from redis.asyncio import Redis

from channel_app.publishing import answer_after
from sse.broker import BrokerUnavailable, Fence
from sse.redis_calls import guarded
from sse.redis_scripts import PREFIX

MAX_MEMORY_RECORDS = 100_000
PENDING_SECONDS = 30.0  # far longer than answering a publish takes
RELEASE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # then the reservation expires by itself
INF = float("inf")  # a record from before `until` (a rolling upgrade) stays held: it lapses with its 30 s
# KEYS: the id. ARGV: this request's hold (how each value it writes starts), its
# reservation, the retention in ms.
RELEASE = """
local held = redis.call('GET', KEYS[1])
if not held or string.sub(held, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
if held == ARGV[2] then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], '{' .. string.sub(held, #ARGV[1] + 1), 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Record:
    body_digest: str
    status: int | None = None  # None while the first request is still being answered
    answer: dict[str, Any] | None = None


def record_key(publisher: str, request_id: str) -> str:
    return hashlib.sha256(f"{publisher}\x00{request_id}".encode()).hexdigest()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class IdempotencyStore(Protocol):
    async def claim(self, key: str, digest: str, attempt: str) -> Record | None:
        """None: the id is now reserved for this request (`attempt`, unique to it).
        Else the existing record."""

    def fence(self, key: str, digest: str, attempt: str, before: dict[str, Any]) -> Fence | None:
        """The fence for this request's next event (`before`: publishing.Outcome.before_step),
        where a publish can outlive the request's wait for it; else None."""

    async def complete(self, key: str, digest: str, status: int, answer: dict[str, Any]) -> None: ...

    async def release(self, key: str, digest: str, attempt: str) -> None:
        """Let go of the id, if this request still holds it: free it when nothing was
        published, else keep the record of what was as the answer. A release the store
        could not confirm (BrokerUnavailable) is tried again in the background."""

    def release_soon(self, key: str, digest: str, attempt: str) -> None:
        """`release`, without waiting for it (as far as the service lives)."""

    async def close(self) -> None:
        """Stop any release still being retried."""


class MemoryIdempotency:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, Record]] = OrderedDict()

    async def claim(self, key: str, digest: str, attempt: str) -> Record | None:
        now = self._clock()
        while self._records and (next(iter(self._records.values()))[0] < now or len(self._records) > MAX_MEMORY_RECORDS):
            self._records.popitem(last=False)
        existing = self._records.get(key)
        if existing is not None and existing[0] >= now:
            return existing[1]
        self._records[key] = (now + min(self._ttl, PENDING_SECONDS), Record(digest))
        self._records.move_to_end(key)
        return None

    def fence(self, key: str, digest: str, attempt: str, before: dict[str, Any]) -> Fence | None:
        return None  # the memory broker's publish never outlives its caller

    async def complete(self, key: str, digest: str, status: int, answer: dict[str, Any]) -> None:
        self._records[key] = (self._clock() + self._ttl, Record(digest, status, answer))
        self._records.move_to_end(key)

    async def release(self, key: str, digest: str, attempt: str) -> None:
        self._records.pop(key, None)

    def release_soon(self, key: str, digest: str, attempt: str) -> None:
        self._records.pop(key, None)

    async def close(self) -> None:
        return None


class RedisIdempotency:
    """Keys `cp:publish-id:<sha256(publisher, id)>` holding JSON, expiring after the retention."""

    def __init__(self, redis: Redis, ttl_seconds: float, timeout_seconds: float, prefix: str = PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl_seconds * 1000)
        self._pending_ms = int(min(ttl_seconds, PENDING_SECONDS) * 1000)
        self._timeout = timeout_seconds
        self._release = redis.register_script(RELEASE)
        self._retries: set[asyncio.Task[None]] = set()

    def _key(self, key: str) -> str:
        return f"{self._prefix}publish-id:{key}"

    async def claim(self, key: str, digest: str, attempt: str) -> Record | None:
        pending = _pending(digest, attempt)
        for _ in range(2):  # SET NX then GET (Redis 6.2 has no SET NX GET); again if it expired between
            if await guarded(self._redis.set(self._key(key), pending, px=self._pending_ms, nx=True), self._timeout):
                return None
            stored = await guarded(self._redis.get(self._key(key)), self._timeout)
            if stored is not None:
                return _record(orjson.loads(stored))
        return None

    async def complete(self, key: str, digest: str, status: int, answer: dict[str, Any]) -> None:
        value = orjson.dumps({"digest": digest, "status": status, "answer": answer})
        await guarded(self._redis.set(self._key(key), value, px=self._ttl_ms), self._timeout)

    def fence(self, key: str, digest: str, attempt: str, before: dict[str, Any]) -> Fence:
        # The last event's record is the answer; an earlier one's keeps the hold, and
        # lasts no longer than a reservation: a request that died mid-sequence holds
        # its id no longer than one that died before publishing.
        last = before["last"]
        held = {} if last else {"attempt": attempt, "until": int(time.time() * 1000) + self._pending_ms}
        record = orjson.dumps({**held, "digest": digest, "before": before})[:-1] + b',"step":'
        return Fence(self._key(key), _holder(attempt), record, self._ttl_ms)

    async def release(self, key: str, digest: str, attempt: str) -> None:
        try:
            await self._release_once(key, digest, attempt)
        except BrokerUnavailable:
            # Compare-and-release: a late one never frees a hold another request took since.
            self._retry_release(key, digest, attempt, RELEASE_RETRY_DELAYS)
            raise

    def release_soon(self, key: str, digest: str, attempt: str) -> None:
        self._retry_release(key, digest, attempt, (0.0, *RELEASE_RETRY_DELAYS))

    def _retry_release(self, key: str, digest: str, attempt: str, delays: tuple[float, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._release_later(key, digest, attempt, delays))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def close(self) -> None:
        for task in list(self._retries):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _release_once(self, key: str, digest: str, attempt: str) -> None:
        args = [_holder(attempt), _pending(digest, attempt), self._ttl_ms]
        await guarded(self._release(keys=[self._key(key)], args=args), self._timeout)

    async def _release_later(self, key: str, digest: str, attempt: str, delays: tuple[float, ...]) -> None:
        for delay in delays:
            await asyncio.sleep(delay)
            with contextlib.suppress(BrokerUnavailable):
                await self._release_once(key, digest, attempt)
                return


def _holder(attempt: str) -> bytes:
    """How every value a request writes while it holds its id starts."""
    return b'{"attempt":' + orjson.dumps(attempt) + b","


def _pending(digest: str, attempt: str) -> bytes:
    return orjson.dumps({"attempt": attempt, "digest": digest})


def _record(value: dict[str, Any]) -> Record:
    if "attempt" in value and not ("step" in value and value.get("until", INF) <= time.time() * 1000):
        return Record(value["digest"])  # still held by the request answering it
    if "step" in value:
        return Record(value["digest"], *answer_after(value["before"], value["step"]))
    return Record(value["digest"], value.get("status"), value.get("answer"))

"""Rate limiting for channel-push: GCRA (generic cell rate algorithm).

A ``Rate`` of ``count`` per ``period_seconds`` lets a fresh key spend ``count``
hits at once, then refills one hit every ``period_seconds / count``. The whole
state of a key is one number, its theoretical arrival time (TAT), so the
Redis backend (``security.ratelimit_redis``) can run the same step atomically
in one Lua script and the memory backend here needs one dict entry per key.

Both backends key their state on ``(rate, key)``, so the same key string used
with two different rates counts against two independent buckets. Redis keys
are always a digest of it, and so are the memory backend's keys longer than
MAX_PLAIN_KEY_CHARS: callers may pass ids of any length without creating huge
keys. A shorter key is kept as it is in memory, behind the rate's prefix
(which holds a ':', so it never equals a hex digest): hashing it was a fifth
of a hit's time, two hits per function call and two per connect.

All arithmetic is on integer microseconds so that exactly ``count`` hits fit
into a burst (float sums like ``50 * 1.2`` can overshoot the period).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol

if TYPE_CHECKING:
    from security.ratelimit_redis import RedisRateLimiter

__all__ = [
    "Decision",
    "MemoryRateLimiter",
    "Rate",
    "RateLimiter",
    "RedisRateLimiter",
]

_MICROS = 1_000_000
MAX_PLAIN_KEY_CHARS = 160  # "function_client:" and a clientId of up to 128 characters fit
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}
_RATE_PATTERN = re.compile(
    r"\s*(?P<count>\d+)\s*/\s*(?P<amount>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rate:
    count: int
    period_seconds: float

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"rate count must be a positive int, got {self.count!r}")
        if not (math.isfinite(self.period_seconds) and self.period_seconds > 0):
            raise ValueError(f"rate period must be positive, got {self.period_seconds!r}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"60/minute"``, ``"10/second"``, ``"1000/hour"``, ``"5/10s"``."""
        match = _RATE_PATTERN.fullmatch(text)
        unit = match and _UNIT_SECONDS.get(match["unit"].lower())
        if not match or unit is None:
            raise ValueError(f"not a rate: {text!r} (expected e.g. '60/minute' or '5/10s')")
        amount = float(match["amount"]) if match["amount"] else 1.0
        return cls(int(match["count"]), amount * unit)

    # Cached: a rate is fixed, and these are read several times on every hit.
    @cached_property
    def interval_us(self) -> int:
        """Time one hit occupies; rounded down so ``count`` hits never exceed the period."""
        return max(1, round(self.period_seconds * _MICROS) // self.count)

    @cached_property
    def burst_us(self) -> int:
        return self.interval_us * self.count

    @cached_property
    def bucket_prefix(self) -> str:
        return f"{self.interval_us}:{self.count}:"


class Decision(NamedTuple):
    """One hit's answer. A named tuple: two are made per call (a frozen dataclass's __init__ costs four times as much)."""

    allowed: bool
    retry_after_seconds: float  # 0 when allowed
    remaining: int  # best effort

    @property
    def retry_after_header(self) -> str:
        """The wait as an HTTP Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: Rate, spend: bool = True, cost: int = 1) -> Decision:
        """Whether `cost` hits (at most `rate.count`) are allowed now; with `spend=False`
        they are only asked, not counted."""


def bucket_id(key: str, rate: Rate) -> str:
    """Fixed-size digest of the key and the rate it is limited by."""
    material = (rate.bucket_prefix + key).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def gcra_step(tat_us: int | None, now_us: int, rate: Rate, cost: int = 1) -> tuple[Decision, int | None]:
    """`cost` GCRA hits at once, all or none. Returns the decision and the new TAT to
    store (None: store nothing).

    ``ratelimit_redis._GCRA_LUA`` is the same step; keep the two in sync.
    """
    interval, burst = rate.interval_us, rate.burst_us
    new_tat = (now_us if tat_us is None else max(tat_us, now_us)) + (interval if cost == 1 else interval * spent_hits(rate, cost))
    wait = new_tat - burst - now_us
    if wait > 0:
        return Decision(False, wait / _MICROS, 0), None
    remaining = (burst - (new_tat - now_us)) // interval
    return Decision(True, 0.0, remaining), new_tat


def spent_hits(rate: Rate, cost: int) -> int:
    """A cost over the whole budget spends the whole budget: it could never pass otherwise."""
    return min(max(cost, 1), rate.count)


class MemoryRateLimiter:
    """Per-process limiter for one event loop (not thread-safe; ``hit`` never awaits).

    Memory stays bounded two ways:

    * every ``prune_interval_seconds`` a hit sweeps out keys whose TAT has
      passed (such a key is indistinguishable from an unseen one), so keys
      that go quiet cost nothing after their period;
    * at most ``max_keys`` keys are kept; beyond that the least recently hit
      key is evicted. That forgets a live key's usage early, which only
      happens when more than ``max_keys`` distinct keys are hit within one
      period - i.e. under key spraying - and is the price of a hard bound.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
        prune_interval_seconds: float = 60.0,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._max_keys = max_keys
        self._prune_interval_us = round(prune_interval_seconds * _MICROS)
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._next_prune_us: int | None = None

    def __len__(self) -> int:
        return len(self._tats)

    async def hit(self, key: str, rate: Rate, spend: bool = True, cost: int = 1) -> Decision:
        now_us = round(self._clock() * _MICROS)
        self._prune_if_due(now_us)
        bucket = rate.bucket_prefix + key if len(key) <= MAX_PLAIN_KEY_CHARS else bucket_id(key, rate)
        tat_us = self._tats.get(bucket)
        decision, new_tat = gcra_step(tat_us, now_us, rate, cost)
        if not spend:
            return decision
        if new_tat is not None:
            self._store(bucket, new_tat)
        elif tat_us is not None:
            self._tats.move_to_end(bucket)  # a refused key is still active: keep it off the LRU end
        return decision

    def _store(self, bucket: str, tat_us: int) -> None:
        self._tats[bucket] = tat_us
        self._tats.move_to_end(bucket)
        while len(self._tats) > self._max_keys:
            self._tats.popitem(last=False)

    def _prune_if_due(self, now_us: int) -> None:
        if self._next_prune_us is None:
            self._next_prune_us = now_us + self._prune_interval_us
        if now_us < self._next_prune_us:
            return
        self._next_prune_us = now_us + self._prune_interval_us
        expired = [bucket for bucket, tat in self._tats.items() if tat <= now_us]
        for bucket in expired:
            del self._tats[bucket]


def __getattr__(name: str) -> object:
    # Lazy so that memory-only users don't import redis, and so that the two
    # modules can import each other in either order.
    if name == "RedisRateLimiter":
        from security.ratelimit_redis import RedisRateLimiter

        return RedisRateLimiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

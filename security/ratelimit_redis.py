"""Redis-backed GCRA limiter shared by all channel-push instances.

Each hit is one EVALSHA of a small Lua script (redis-py's ``Script`` reloads
it after ``NOSCRIPT``, e.g. when Redis restarted), so the read-modify-write
of a key's TAT is atomic across instances. The script reads the clock with
Redis ``TIME``: all instances share one clock, so their own clock skew does
not matter. Needs Redis >= 5 (scripts replicated by effects).

Every hit is also bounded by ``timeout_seconds``: redis-py's default retry
policy can spend seconds on a refused connection, and a hung Redis would
otherwise stall every function call and SSE connect.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
from redis.exceptions import RedisError

from security.ratelimit import Decision, Rate, bucket_id, spent_hits

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisRateLimiter"]

logger = logging.getLogger(__name__)

# Mirror of ratelimit.gcra_step. KEYS[1]: bucket; ARGV: interval_us, burst_us, spend (1, or 0 to
# only ask), hits (the cost, already capped by spent_hits).
# Returns {allowed (0/1), retry_after_us, remaining}.
# string.format('%d') because tostring() would round a 16-digit TAT.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval * tonumber(ARGV[4] or '1')
local wait = new_tat - burst - now
if wait > 0 then
  return {0, wait, 0}
end
if ARGV[3] == '1' then
  local ttl_ms = math.ceil((new_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
end
return {1, 0, math.floor((burst - (new_tat - now)) / interval)}
"""


class RedisRateLimiter:
    """Rate limiter whose state lives in Redis under ``prefix`` + a 32-char digest.

    When Redis fails (refused, slower than ``timeout_seconds``, script error),
    ``hit`` never raises:

    * ``fail_open=True`` (default) allows the hit. An outage of the shared
      store should not take the push service down with it; the limits come
      back as soon as Redis does.
    * ``fail_open=False`` refuses the hit with ``retry_after`` of one
      refill interval, for deployments that prefer an outage to abuse.

    A warning is logged when Redis starts failing and an info line when it
    recovers, not once per hit, so an outage does not flood the logs.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str = "cp:rl:",
        *,
        fail_open: bool = True,
        timeout_seconds: float = 0.5,
    ) -> None:
        self._prefix = prefix
        self._fail_open = fail_open
        self._timeout_seconds = timeout_seconds
        self._script = redis.register_script(_GCRA_LUA)
        self._failing = False

    async def hit(self, key: str, rate: Rate, spend: bool = True, cost: int = 1) -> Decision:
        redis_key = self._prefix + bucket_id(key, rate)
        try:
            with anyio.fail_after(self._timeout_seconds):
                allowed, wait_us, remaining = await self._script(
                    keys=[redis_key], args=[rate.interval_us, rate.burst_us, 1 if spend else 0, spent_hits(rate, cost)]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            return self._on_failure(exc, rate)
        self._on_success()
        return Decision(bool(allowed), int(wait_us) / 1_000_000, int(remaining))

    def _on_failure(self, exc: Exception, rate: Rate) -> Decision:
        if not self._failing:
            self._failing = True
            logger.warning(
                "rate limiter: Redis unavailable (%s: %s); failing %s until it recovers",
                type(exc).__name__,
                exc,
                "open" if self._fail_open else "closed",
            )
        if self._fail_open:
            return Decision(True, 0.0, 0)
        return Decision(False, rate.interval_us / 1_000_000, 0)

    def _on_success(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("rate limiter: Redis reachable again")

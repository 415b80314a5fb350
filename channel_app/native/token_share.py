"""Native-API tokens shared by every instance through Redis (with REDIS_URL).

Channel allows 10 ``issueToken`` + ``refreshToken`` calls per 30 minutes to
the app. Instances that each kept their own tokens would each spend calls on
the same channels, and from about six instances on they would spend more than
Channel allows: the chat fallback would start failing with Channel's 429. A
``refreshToken`` also retires the refresh token it used, so two instances
refreshing one channel at once would make all but one fall back to a fresh
``issueToken``. So the instances share, under ``cp:native:``:

- the current token of each channel (``token:<channel>``, ``-`` for the app
  token): access and refresh token, and when to renew it and when it expires
  as wall-clock times, kept until it expires;
- one renewal at a time per channel (``renewal:<channel>``, ``SET NX PX``
  holding the renewing instance's own value, for as long as a renewal can
  take): an instance that finds another renewing waits for the token that one
  stores. A renewal that fails leaves ``failed:<kind>`` there for a short
  cooldown instead, which the waiting and the later instances answer with at
  once, rather than each spending a call of the budget on the same failure;
- the budget (``budget``): a sorted set of spend times, trimmed to the window,
  checked and added to in one script; a spend whose request never reached
  Channel is taken back.

Tokens in Redis are bearer credentials for the app's Channel permissions:
Redis must be as private as the App Secret's environment (it already holds
every event). Every call has REDIS_TIMEOUT_SECONDS and raises
``BrokerUnavailable``; TokenManager then goes on with its own cache and budget.
"""

from __future__ import annotations

import secrets
import time
from typing import Callable, NamedTuple, Protocol

import orjson
from redis.asyncio import Redis

from sse.redis_calls import guarded
from sse.redis_scripts import PREFIX

SPEND = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""


# KEYS: renewal lock. ARGV: owner, failure kind ('' for success), cooldown ms.
END_RENEWAL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], 'failed:' .. ARGV[2], 'PX', ARGV[3])
end
return 1
"""
FAILED_PREFIX = "failed:"


class SharedToken(NamedTuple):
    access: str
    refresh: str | None
    renew_at: float  # wall-clock seconds
    expires_at: float


class TokenShare(Protocol):
    async def current(self, channel_id: str | None) -> SharedToken | None: ...

    async def store(self, channel_id: str | None, token: SharedToken) -> None: ...

    async def begin_renewal(self, channel_id: str | None, seconds: float) -> str | None:
        """This instance's hold on the renewal, or None: another one is renewing (or just failed)."""

    async def renewal_state(self, channel_id: str | None) -> str | None:
        """None when no renewal holds the channel, `failed:<kind>` after one failed, else a holder's value."""

    async def end_renewal(self, channel_id: str | None, holder: str, failure: str | None, cooldown_seconds: float) -> None:
        """Let go of the hold; after a `failure` (its kind), leave it for the cooldown."""

    async def spend(self, budget: int, window_seconds: float) -> str | None:
        """Take one unit of the app-wide budget: its receipt, or None when it is spent."""

    async def refund(self, receipt: str) -> None:
        """Give back a unit whose request never reached Channel."""


class RedisTokenShare:
    def __init__(
        self, redis: Redis, timeout_seconds: float, wall_clock: Callable[[], float] = time.time, prefix: str = PREFIX
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout_seconds
        self._wall_clock = wall_clock
        self._spend = redis.register_script(SPEND)
        self._end_renewal = redis.register_script(END_RENEWAL)

    def _key(self, kind: str, channel_id: str | None) -> str:
        return f"{self._prefix}native:{kind}:{'-' if channel_id is None else channel_id}"

    async def current(self, channel_id: str | None) -> SharedToken | None:
        stored = await guarded(self._redis.get(self._key("token", channel_id)), self._timeout)
        if stored is None:
            return None
        fields = orjson.loads(stored)
        return SharedToken(fields["access"], fields["refresh"], fields["renew_at"], fields["expires_at"])

    async def store(self, channel_id: str | None, token: SharedToken) -> None:
        lifetime_ms = int((token.expires_at - self._wall_clock()) * 1000)
        if lifetime_ms > 0:
            await guarded(self._redis.set(self._key("token", channel_id), orjson.dumps(token._asdict()), px=lifetime_ms), self._timeout)

    async def begin_renewal(self, channel_id: str | None, seconds: float) -> str | None:
        holder = secrets.token_hex(8)
        taken = await guarded(self._redis.set(self._key("renewal", channel_id), holder, nx=True, px=int(seconds * 1000)), self._timeout)
        return holder if taken else None

    async def renewal_state(self, channel_id: str | None) -> str | None:
        state = await guarded(self._redis.get(self._key("renewal", channel_id)), self._timeout)
        return None if state is None else state.decode()

    async def end_renewal(self, channel_id: str | None, holder: str, failure: str | None, cooldown_seconds: float) -> None:
        args = [holder, failure or "", max(1, int(cooldown_seconds * 1000))]
        await guarded(self._end_renewal(keys=[self._key("renewal", channel_id)], args=args), self._timeout)

    async def spend(self, budget: int, window_seconds: float) -> str | None:
        receipt = secrets.token_hex(8)  # a member of its own per spend
        args = [self._wall_clock(), window_seconds, budget, receipt]
        return receipt if await guarded(self._spend(keys=[self._budget_key], args=args), self._timeout) else None

    async def refund(self, receipt: str) -> None:
        await guarded(self._redis.zrem(self._budget_key, receipt), self._timeout)

    @property
    def _budget_key(self) -> str:
        return f"{self._prefix}native:budget"

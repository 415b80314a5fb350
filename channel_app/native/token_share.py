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
- one renewal at a time per channel (``renewal:<channel>``, ``SET NX PX``): an
  instance that finds another renewing waits for the token that one stores;
- the budget (``budget``): a sorted set of spend times, trimmed to the window,
  checked and added to in one script.

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

from sse.redis_scripts import PREFIX, guarded

SPEND = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""


class SharedToken(NamedTuple):
    access: str
    refresh: str | None
    renew_at: float  # wall-clock seconds
    expires_at: float


class TokenShare(Protocol):
    async def current(self, channel_id: str | None) -> SharedToken | None: ...

    async def store(self, channel_id: str | None, token: SharedToken) -> None: ...

    async def begin_renewal(self, channel_id: str | None, seconds: float) -> bool:
        """True: this instance renews; False: another one is renewing."""

    async def end_renewal(self, channel_id: str | None) -> None: ...

    async def spend(self, budget: int, window_seconds: float) -> bool:
        """Take one unit of the app-wide budget; False when it is spent."""


class RedisTokenShare:
    def __init__(self, redis: Redis, timeout_seconds: float, wall_clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._timeout = timeout_seconds
        self._wall_clock = wall_clock
        self._spend = redis.register_script(SPEND)

    @staticmethod
    def _key(kind: str, channel_id: str | None) -> str:
        return f"{PREFIX}native:{kind}:{'-' if channel_id is None else channel_id}"

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

    async def begin_renewal(self, channel_id: str | None, seconds: float) -> bool:
        key = self._key("renewal", channel_id)
        return bool(await guarded(self._redis.set(key, b"1", nx=True, px=int(seconds * 1000)), self._timeout))

    async def end_renewal(self, channel_id: str | None) -> None:
        await guarded(self._redis.delete(self._key("renewal", channel_id)), self._timeout)

    async def spend(self, budget: int, window_seconds: float) -> bool:
        now = self._wall_clock()
        args = [now, window_seconds, budget, secrets.token_hex(8)]  # a member of its own per spend
        return bool(await guarded(self._spend(keys=[f"{PREFIX}native:budget"], args=args), self._timeout))

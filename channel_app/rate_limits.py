"""The service's four rate limits over one limiter (memory, or Redis when shared).

Function calls are limited per Channel channel id and per target clientId;
stream connects per client IP and per clientId. With limits disabled every
hit is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from security.ratelimit import Decision, Rate, RateLimiter

ALLOWED = Decision(allowed=True, retry_after_seconds=0.0, remaining=0)


@dataclass(frozen=True)
class RateLimits:
    limiter: RateLimiter | None
    rates: dict[str, Rate]

    async def hit(self, scope: str, key: str) -> Decision:
        if self.limiter is None:
            return ALLOWED
        return await self.limiter.hit(f"{scope}:{key}", self.rates[scope])

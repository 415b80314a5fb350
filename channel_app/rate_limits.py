"""The service's four rate limits over one limiter (memory, or Redis when shared).

Function calls are limited per Channel channel id and per target clientId;
stream connects per client IP and per clientId. With limits disabled every
hit is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from security.ratelimit import Decision, Rate, RateLimiter

ALLOWED = Decision(allowed=True, retry_after_seconds=0.0, remaining=0)


@dataclass(frozen=True)
class RateLimits:
    limiter: RateLimiter | None
    rates: dict[str, Rate]
    on_refused: Callable[[str], None] | None = None  # told the scope of each refusal (metrics)

    async def hit(self, scope: str, key: str, cost: int = 1) -> Decision:
        """`cost` hits at once (a sequence of events), at most the scope's whole budget."""
        if self.limiter is None:
            return ALLOWED
        decision = await self.limiter.hit(f"{scope}:{key}", self.rates[scope], cost=cost)
        if not decision.allowed and self.on_refused is not None:
            self.on_refused(scope)
        return decision

    async def would_allow(self, scope: str, key: str) -> Decision:
        """What `hit` would answer now, without counting a hit or a refusal."""
        if self.limiter is None:
            return ALLOWED
        return await self.limiter.hit(f"{scope}:{key}", self.rates[scope], spend=False)

"""Everything a request handler needs, built once per app in the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import httpx
import redis.asyncio as redis_asyncio

from channel_app.lifecycle import Lifecycle
from channel_app.methods import MethodDeps
from channel_app.policies import SecurityPolicies
from channel_app.rate_limits import RateLimits
from config.settings import Settings
from security.ratelimit import MemoryRateLimiter, RateLimiter
from security.ratelimit_redis import RedisRateLimiter
from security.signature import SignatureVerifier
from security.tokens import ClientTokenVerifier
from sse.broker import Broker, make_broker
from sse.service import SseService


@dataclass
class Services:
    settings: Settings
    lifecycle: Lifecycle
    broker: Broker
    sse: SseService
    signatures: SignatureVerifier
    tokens: ClientTokenVerifier
    limits: RateLimits
    method_deps: MethodDeps
    http: httpx.AsyncClient


def rate_limiter(shared_redis: redis_asyncio.Redis | None) -> RateLimiter:
    return RedisRateLimiter(shared_redis) if shared_redis is not None else MemoryRateLimiter()


@asynccontextmanager
async def running_services(settings: Settings, policies: SecurityPolicies, lifecycle: Lifecycle) -> AsyncIterator[Services]:
    broker = make_broker(settings)
    sse = SseService(broker)
    shared_redis = redis_asyncio.Redis.from_url(settings.redis_url) if settings.redis_url else None
    limits = RateLimits(rate_limiter(shared_redis) if settings.rate_limits_enabled else None, policies.rates)
    async with httpx.AsyncClient(timeout=5.0) as http:
        await broker.start()
        try:
            yield Services(
                settings=settings,
                lifecycle=lifecycle,
                broker=broker,
                sse=sse,
                signatures=policies.signatures,
                tokens=policies.tokens,
                limits=limits,
                method_deps=MethodDeps(
                    sse=sse,
                    redirects=policies.redirects,
                    allow_broadcast=settings.allow_broadcast,
                    limits=limits,
                    queue_if_offline_default=settings.queue_if_offline_default,
                ),
                http=http,
            )
        finally:
            await broker.close()
            if shared_redis is not None:
                await shared_redis.aclose()

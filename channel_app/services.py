"""Everything a request handler needs, built once per app in the lifespan."""

from __future__ import annotations

import logging

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import httpx
import redis.asyncio as redis_asyncio

from channel_app.body_deadlines import BodyDeadlines
from channel_app.chat_fallback import ChatFallback
from channel_app.idempotency import IdempotencyStore, MemoryIdempotency, RedisIdempotency
from channel_app.lifecycle import Lifecycle
from channel_app.methods import MethodDeps
from channel_app.metrics import Metrics
from channel_app.native.client import NativeApiClient
from channel_app.native.token_share import RedisTokenShare
from channel_app.native.tokens import TokenManager
from channel_app.observers import ConnectionEvents
from channel_app.policies import SecurityPolicies
from channel_app.rate_limits import RateLimits
from config.settings import Settings
from security.api_keys import ApiKeys
from security.ratelimit import MemoryRateLimiter, RateLimiter
from security.ratelimit_redis import RedisRateLimiter
from security.signature import SignatureVerifier
from security.tokens import ClientTokenVerifier
from sse.acks import Acks, make_acks
from sse.broker import Broker, make_broker
from sse.redis_calls import redis_client
from sse.service import SseService

logger = logging.getLogger("channel_push.startup")


@dataclass
class Services:
    settings: Settings
    lifecycle: Lifecycle
    metrics: Metrics
    broker: Broker
    sse: SseService
    signatures: SignatureVerifier
    tokens: ClientTokenVerifier
    limits: RateLimits
    method_deps: MethodDeps
    http: httpx.AsyncClient
    channel_api: tuple[NativeApiClient, TokenManager] | None
    acks: Acks
    publish_keys: ApiKeys
    idempotency: IdempotencyStore
    body_deadlines: BodyDeadlines


def channel_api(
    settings: Settings, http: httpx.AsyncClient, shared_redis: redis_asyncio.Redis | None = None
) -> tuple[NativeApiClient, TokenManager] | None:
    """Channel's native API, when the app secret is configured; with Redis, every
    instance shares its tokens and their budget (channel_app/native/token_share.py)."""
    if settings.channel_app_secret is None:
        return None
    client = NativeApiClient(
        http,
        base_url=settings.channel_api_base_url,
        timeout_seconds=settings.channel_api_timeout_seconds,
        max_retries=1,
    )
    prefix = settings.effective_redis_key_prefix
    shared = RedisTokenShare(shared_redis, settings.redis_timeout_seconds, prefix=prefix) if shared_redis is not None else None
    return client, TokenManager(client, settings.channel_app_secret.get_secret_value(), shared=shared)


def idempotency_store(settings: Settings, shared_redis: redis_asyncio.Redis | None) -> IdempotencyStore:
    """Publish ids are remembered as long as their events can still be replayed."""
    retention = max(settings.history_ttl_seconds, settings.queue_ttl_seconds)
    if shared_redis is not None:
        return RedisIdempotency(shared_redis, retention, settings.redis_timeout_seconds, settings.effective_redis_key_prefix)
    return MemoryIdempotency(retention)


def rate_limiter(shared_redis: redis_asyncio.Redis | None, prefix: str) -> RateLimiter:
    return RedisRateLimiter(shared_redis, prefix + "rl:") if shared_redis is not None else MemoryRateLimiter()


@asynccontextmanager
async def running_services(
    settings: Settings, policies: SecurityPolicies, lifecycle: Lifecycle, metrics: Metrics
) -> AsyncIterator[Services]:
    broker = make_broker(settings, ConnectionEvents(metrics))
    sse = SseService(broker, metrics)
    registry = broker.registry
    metrics.watch(
        connections=lambda: registry.connection_total,
        clients=lambda: registry.client_total,
        draining=lambda: lifecycle.draining,
    )
    shared_redis = redis_client(settings.redis_url, settings.redis_timeout_seconds) if settings.redis_url else None
    limiter = rate_limiter(shared_redis, settings.effective_redis_key_prefix) if settings.rate_limits_enabled else None
    limits = RateLimits(limiter, policies.rates, on_refused=metrics.rate_limited)
    acks = make_acks(settings, broker)
    async with httpx.AsyncClient(timeout=settings.channel_api_timeout_seconds) as http:
        native = channel_api(settings, http, shared_redis)
        fallback_deadline = 2 * settings.channel_api_timeout_seconds
        chat = ChatFallback(*native, fallback_deadline) if native and settings.chat_fallback_enabled else None
        if settings.is_production and settings.chat_fallback_enabled and native is None:
            logger.warning(
                "chat fallback is off: CHANNEL_APP_SECRET is unset, so calls for a visitor with no open page "
                "answer CLIENT_NOT_CONNECTED (set it, or CHAT_FALLBACK_ENABLED=false to say this is meant)"
            )
        await broker.start()
        idempotency = idempotency_store(settings, shared_redis)
        try:
            yield Services(
                settings=settings,
                lifecycle=lifecycle,
                metrics=metrics,
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
                    acks=acks,
                    chat=chat,
                    queue_if_offline_default=settings.queue_if_offline_default,
                ),
                http=http,
                channel_api=native,
                acks=acks,
                publish_keys=policies.publish_keys,
                idempotency=idempotency,
                body_deadlines=BodyDeadlines(settings.body_timeout_seconds),
            )
        finally:
            if native is not None:
                await native[1].close()
            await acks.close()
            await idempotency.close()
            await broker.close()
            if shared_redis is not None:
                await shared_redis.aclose()

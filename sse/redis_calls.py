"""Calling Redis: the client, and one call within its time limit, every failure as
the broker's own.

`guarded` turns a Redis call that fails or takes too long into BrokerUnavailable
(or BrokerRefusedWrite when Redis is out of memory), so callers handle one kind
of failure whatever the client raised. `fenced_call` runs a publish script with
its idempotency fence (sse/broker.py Fence; the scripts' `fenced_run`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sse.broker import BrokerRefusedWrite, BrokerUnavailable, Fence, PublishFenced

logger = logging.getLogger("channel_push.redis")


def redis_client(url: str, timeout_seconds: float, commands: bool = True) -> Redis:
    """A client for REDIS_URL. For commands, one quick retry lets a pooled connection
    that died with Redis (a restart) reconnect, instead of failing the first call on
    each such connection: without it, 7 of 8 publishes with an id answered 503 after
    a restart while /readyz said ready (review reproduction). The pub/sub client's
    reconnects are its listener's own."""
    options: dict[str, Any] = {"socket_connect_timeout": timeout_seconds, "retry": Retry(NoBackoff(), 1 if commands else 0)}
    if commands:
        options["socket_timeout"] = timeout_seconds
    if not url.startswith("unix://"):  # redis-py's unix connections take no keepalive option
        options["socket_keepalive"] = True
    return Redis.from_url(url, **options)


async def fenced_call(script: AsyncScript, keys: list, args: list, fence: Fence | None, timeout_seconds: float) -> Any:
    """Run a publish script (one built on `fenced_run`), with the fence's key and
    arguments appended when there is one; raises PublishFenced when it did not hold."""
    if fence is not None:
        keys = [*keys, fence.key]
        args = [*args, fence.holder, fence.record, fence.lifetime_ms]
    result = await guarded(script(keys=keys, args=args), timeout_seconds)
    if result[0] == b"fenced":
        raise PublishFenced("the publish's reservation no longer held: nothing was published")
    return result


async def guarded(call: Awaitable[Any], timeout_seconds: float) -> Any:
    """Await one Redis call within the time limit; any failure becomes BrokerUnavailable."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await call
    except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as error:
        raise BrokerUnavailable(f"redis unreachable: {error!r}") from error
    except OutOfMemoryError as error:
        logger.error("redis refused a write: %r (maxmemory reached under noeviction)", error)
        raise BrokerRefusedWrite(f"redis refused the write: {error!r}") from error
    except RedisError as error:
        logger.error("redis call failed: %r", error)
        raise BrokerUnavailable(f"redis error: {error!r}") from error

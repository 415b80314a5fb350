"""`commands --print` and `register-commands`: our ALF commands, shown or registered."""

from __future__ import annotations

import asyncio
import sys

import httpx
import redis.asyncio as redis_asyncio

from channel_app.native.client import NativeApiError
from channel_app.native.commands import command_definitions, format_commands, register_commands
from channel_app.services import channel_api
from config.settings import Settings


def print_commands(scope: str) -> int:
    print(format_commands(scope), end="")
    return 0


def register(settings: Settings, scope: str) -> int:
    if settings.channel_app_secret is None or not settings.channel_app_id:
        print("channel-push: set CHANNEL_APP_ID and CHANNEL_APP_SECRET to register commands", file=sys.stderr)
        return 2
    try:
        asyncio.run(_register(settings, scope))
    except NativeApiError as failure:
        print(f"channel-push: registerCommands failed ({failure.kind}): {failure}", file=sys.stderr)
        return 1
    names = ", ".join(command["name"] for command in command_definitions(scope))
    print(f"Registered commands for app {settings.channel_app_id}: {names}")
    return 0


async def _register(settings: Settings, scope: str) -> None:
    # With REDIS_URL, the running instances' app token and budget are used (native/token_share.py).
    shared_redis = redis_asyncio.Redis.from_url(settings.redis_url) if settings.redis_url else None
    try:
        async with httpx.AsyncClient() as http:
            native = channel_api(settings, http, shared_redis)  # the service's own client: same timeouts and retries
            if native is None:
                raise NativeApiError("unauthorized", "CHANNEL_APP_SECRET is not set")
            await register_commands(*native, settings.channel_app_id, scope=scope)
    finally:
        if shared_redis is not None:
            await shared_redis.aclose()

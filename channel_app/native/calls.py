"""Calling a native function with the right token, renewing it once on a 401."""

from __future__ import annotations

from typing import Any

from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.tokens import TokenManager


async def call_with_token(
    client: NativeApiClient,
    tokens: TokenManager,
    channel_id: str | None,
    method: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Call ``method`` with the token of ``channel_id`` (``None``: the app token).

    On a 401 the token is invalidated and the call is made once more with a
    fresh one; a second 401 is answered for a cooldown without renewing (see
    TokenManager.record_failure). A 403 (a permission the app lacks) is not
    retried: a new token would be refused too.
    """
    token = await tokens.access_token(channel_id)
    try:
        return await client.call(method, params, access_token=token)
    except NativeApiError as exc:
        if exc.kind != "unauthorized" or exc.status != 401:
            raise
        tokens.invalidate(channel_id, token)
    token = await tokens.access_token(channel_id)
    try:
        return await client.call(method, params, access_token=token)
    except NativeApiError as exc:
        if exc.kind == "unauthorized" and exc.status == 401:
            # A token just issued is refused too: the app, not the token, is what Channel
            # turns away. Renewing on every call would spend the app's token budget.
            tokens.invalidate(channel_id, token)
            tokens.record_failure(channel_id, exc)
        raise

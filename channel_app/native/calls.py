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
    fresh one, unless the refused token was itself issued moments ago; then,
    or on a second 401, the failure is answered for a cooldown without renewing
    (see TokenManager.record_failure). A 403 (a permission the app lacks) is not
    retried: a new token would be refused too.
    """
    token = await tokens.access_token(channel_id)
    try:
        answer = await client.call(method, params, access_token=token)
    except NativeApiError as exc:
        if not _token_refused(exc):
            raise
        issued_just_now = tokens.issued_just_now(channel_id, token)
        tokens.invalidate(channel_id, token)
        if issued_just_now:
            # A token Channel issued moments ago is refused: the app, not the token, is
            # what Channel turns away, and renewing on every call would spend the app's
            # token budget (review reproduction: 10 token calls in 43 s, two per fallback).
            tokens.record_failure(channel_id, exc)
            raise
        token = await tokens.access_token(channel_id)
        try:
            answer = await client.call(method, params, access_token=token)
        except NativeApiError as again:
            if _token_refused(again):
                tokens.invalidate(channel_id, token)
                tokens.record_failure(channel_id, again)
            raise
    tokens.record_success(channel_id)
    return answer


def _token_refused(error: NativeApiError) -> bool:
    return error.kind == "unauthorized" and error.status == 401

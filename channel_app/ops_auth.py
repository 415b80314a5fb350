"""Who counts as an operator (the holder of OPS_TOKEN), and who may use the
operator endpoints (/metrics, /sse/status/stream, /ops).

The token arrives as `Authorization: Bearer ...`, or as the `token` query
parameter for EventSource-based views that cannot set headers (access logs
never show query strings). It is compared in constant time. With OPS_TOKEN
unset nobody is an operator.

Endpoints: with `OPS_TOKEN` set, each needs it, except the page `/ops`, which
holds no data (its status stream needs it). With it unset, `/metrics`
stays open (a scraper on a private network needs no setup), and the status
stream and ops page are open in development but refused with 403 in
production: they hold a connection open for as long as someone watches, which
nobody on the internet should be able to do unasked.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from channel_app.responses import error_response
from config.settings import MAX_OPS_TOKEN_CHARS, Settings


def presented_ops_token(request: Request, allow_query: bool = False) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token", "").strip() if allow_query else None


def is_operator(request: Request, settings: Settings, allow_query: bool = False) -> bool:
    if settings.ops_token is None:
        return False
    presented = presented_ops_token(request, allow_query)
    if not presented or len(presented) > MAX_OPS_TOKEN_CHARS:
        return False
    return hmac.compare_digest(presented.encode(), settings.ops_token.get_secret_value().encode())


def ops_disabled(settings: Settings, open_when_unset: bool) -> Response | None:
    """The 403 for an endpoint production keeps shut while OPS_TOKEN is unset, else None."""
    if settings.ops_token is None and not open_when_unset and settings.is_production:
        return error_response(403, "FORBIDDEN", "operator endpoints are disabled: set OPS_TOKEN to enable them")
    return None


def ops_refusal(request: Request, settings: Settings, open_when_unset: bool) -> Response | None:
    """None when the request may proceed, else the error response to send."""
    if settings.ops_token is None:
        return ops_disabled(settings, open_when_unset)
    if is_operator(request, settings, allow_query=True):
        return None
    return error_response(401, "UNAUTHORIZED", "a valid ops token is required", {"WWW-Authenticate": "Bearer"})

"""Who may use the operator endpoints (/metrics, /sse/status/stream, /ops).

With `OPS_TOKEN` set, each needs it: `Authorization: Bearer <token>`, or the
`token` query parameter because a browser's EventSource cannot set headers
(the access log never shows query strings). The comparison is constant-time.

With `OPS_TOKEN` unset, `/metrics` stays open (a scraper on a private network
needs no setup), and the status stream and ops page are open in development
but refused with 403 in production: they hold a connection open for as long as
someone watches, which nobody on the internet should be able to do unasked.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from channel_app.responses import error_response
from config.settings import Settings

MAX_OPS_TOKEN_CHARS = 1024


def presented_ops_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token") or None


def ops_refusal(request: Request, settings: Settings, open_when_unset: bool) -> Response | None:
    """None when the request may proceed, else the error response to send."""
    expected = settings.ops_token
    if expected is None:
        if open_when_unset or not settings.is_production:
            return None
        return error_response(403, "FORBIDDEN", "operator endpoints are disabled: set OPS_TOKEN to enable them")
    presented = presented_ops_token(request)
    if presented is not None and len(presented) <= MAX_OPS_TOKEN_CHARS and hmac.compare_digest(
        presented.encode(), expected.get_secret_value().encode()
    ):
        return None
    return error_response(401, "UNAUTHORIZED", "a valid ops token is required", {"WWW-Authenticate": "Bearer"})

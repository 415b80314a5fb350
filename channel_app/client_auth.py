"""Who is opening a stream: the client id it claims, and the token that proves it."""

from __future__ import annotations

from starlette.requests import Request

from sse.names import is_event_id

MAX_TOKEN_CHARS = 8192


def presented_token(request: Request, cookie_name: str) -> str | None:
    """Bearer header first, then the `token` query parameter, then the cookie."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token") or request.cookies.get(cookie_name) or None


def last_event_id(request: Request) -> str | None:
    """Last-Event-ID from the header, or the query for clients that cannot set headers.
    Anything not shaped like one of our ids is ignored rather than refused."""
    candidate = (
        request.headers.get("last-event-id")
        or request.query_params.get("lastEventId")
        or request.query_params.get("last_event_id")
    )
    return candidate if candidate and is_event_id(candidate) else None

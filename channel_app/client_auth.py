"""Who a browser is: the client id it claims, and the token that proves it.

`authenticate_client` is shared by every browser route (stream, check, ack), so
they answer the same statuses for the same problems: 401 for a missing, bad or
expired token, 403 for a token issued to another clientId.

A token in a cookie is ambient: the browser attaches it to requests any site
makes (with `SameSite=None`, which a widget on another site needs). So a cookie
counts only on a request from this service's own origin or
`CORS_ALLOWED_ORIGINS`, or on one with no `Origin` that no other site made:
without `Sec-Fetch-Site`, or with `same-origin` or `none` (servers, a same-origin
EventSource, a typed URL). An `<img>` or `<script>` tag on another site sends
no `Origin` but says `cross-site` (or `same-site`). Otherwise a hostile page
could post acknowledgements, or hold streams that take the visitor's connection
slots, in the visitor's name. A browser too old to send `Sec-Fetch-Site`
(Safari before 16.4) is not covered for tag-made requests; a token in the
header or query string was put there by the page itself and needs no such check.
"""

from __future__ import annotations

import re
import time

from starlette.requests import Request

from channel_app.responses import BEARER_CHALLENGE, JSONBody, error_response
from security.jwks import JwksUnavailable
from security.tokens import ClientClaims, TokenRejected
from sse.names import is_event_id

MAX_TOKEN_CHARS = 8192


class ClientAuthFailed(Exception):
    def __init__(self, reason: str, response: JSONBody) -> None:
        super().__init__(reason)
        self.reason = reason  # for metrics: missing_token, invalid_token, forbidden, foreign_origin
        self.response = response


def presented_token(request: Request, cookie_name: str, trusted_origins: list[str]) -> str | None:
    """Bearer header first, then the `token` query parameter, then the cookie (only
    from a trusted origin: see the module docstring)."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    # Trimmed wherever it comes from: a site's token endpoint may end its text with a
    # newline, which fetch() trims from a header but a query keeps, and then the widget's
    # /sse/check (header) and its stream (query) would disagree about one token.
    query_token = request.query_params.get("token", "").strip()
    if query_token:
        return query_token
    cookie_token = request.cookies.get(cookie_name, "").strip()
    if cookie_token and not _cookie_origin_trusted(request, trusted_origins):
        message = "a cookie token is accepted only from this service's own origin or CORS_ALLOWED_ORIGINS"
        raise ClientAuthFailed("foreign_origin", error_response(403, "FORBIDDEN_ORIGIN", message))
    return cookie_token or None


def check_stream_origin(request: Request, allowed_origins: list[str]) -> None:
    """Refuse a browser's stream (or its check) from an origin CORS_ALLOWED_ORIGINS does
    not list, before anything is registered. The browser would hide such a stream from
    its page (no CORS headers), while the stream counted as connected: calls answered
    `delivered` for a page that received nothing, and it held one of the client's
    slots (review reproduction: a misspelt origin, phantom streams for 5 s each). A
    request without `Origin` (a server, a same-origin EventSource) is not a foreign page."""
    origin = request.headers.get("origin")
    if origin is None or origin in allowed_origins or "*" in allowed_origins or origin == _own_origin(request):
        return
    message = f"origin {origin[:200]} may not open streams here: it is not in CORS_ALLOWED_ORIGINS"
    # Readable by that page (this answer only): the widget then closes saying why, where an
    # unreadable 403 looked like an unreachable service, retried for good (review reproduction).
    readable = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if _SERIALISED_ORIGIN.fullmatch(origin) else None
    raise ClientAuthFailed("foreign_origin", error_response(403, "FORBIDDEN_ORIGIN", message, readable))


_SERIALISED_ORIGIN = re.compile(r"null|[a-z][a-z0-9+.-]*://[!-~]{1,253}")  # as browsers send it: nothing else is echoed


_UNMADE_BY_ANOTHER_SITE = (None, "same-origin", "none")


def _cookie_origin_trusted(request: Request, trusted_origins: list[str]) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") in _UNMADE_BY_ANOTHER_SITE
    return origin in trusted_origins or origin == _own_origin(request)


def _own_origin(request: Request) -> str:
    """This request's own origin, `scheme://host[:port]`, compared with the Origin header
    as text: a malformed one (`http://[::1`) is simply not ours. The scheme counts: a page
    on plain `http://` of our host is another origin (one a network attacker can serve).
    Behind a TLS-terminating proxy the scheme is the one a trusted proxy forwards
    (`X-Forwarded-Proto`, FORWARDED_ALLOW_IPS). A Host with the scheme's default port
    (a proxy may forward `name:443`) names the same origin as a browser's, which never
    writes that port."""
    scheme, host = request.scope.get("scheme", "http"), request.headers.get("host") or ""
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is not None and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}"


_DEFAULT_PORTS = {"https": ":443", "http": ":80"}


async def authenticate_client(services, client_id: str, token: str | None) -> ClientClaims:
    """The verified claims of `token`, which must belong to `client_id`; else ClientAuthFailed."""
    if not token:
        raise ClientAuthFailed("missing_token", error_response(401, "UNAUTHORIZED", "a client token is required", BEARER_CHALLENGE))
    if len(token) > MAX_TOKEN_CHARS:
        message = f"the token is longer than {MAX_TOKEN_CHARS} characters"
        raise ClientAuthFailed("invalid_token", error_response(401, "INVALID_TOKEN", message, BEARER_CHALLENGE))
    try:
        claims = await services.tokens.verify(token)
    except TokenRejected as rejected:
        raise ClientAuthFailed("invalid_token", error_response(401, "INVALID_TOKEN", rejected.message, BEARER_CHALLENGE)) from None
    except JwksUnavailable as unavailable:
        # A 401 would make the widget give up on a good token (or every visitor fetch a new
        # one at once): this is the key server's outage, to wait out.
        response = error_response(503, "UNAVAILABLE", str(unavailable), unavailable.retry_after_header)
        raise ClientAuthFailed("keys_unavailable", response) from None
    if claims.expires_at <= time.time():
        # Within the verifier's clock-skew leeway the token still verifies, but a
        # stream would end the moment it opened and the browser would loop.
        raise ClientAuthFailed("invalid_token", error_response(401, "INVALID_TOKEN", "the token has expired", BEARER_CHALLENGE))
    if claims.subject != client_id:
        raise ClientAuthFailed("forbidden", error_response(403, "FORBIDDEN", "the token was issued for another clientId"))
    return claims


def last_event_id(request: Request) -> str | None:
    """Last-Event-ID from the header, or the query for clients that cannot set headers.
    Anything not shaped like one of our ids is ignored rather than refused."""
    candidate = (
        request.headers.get("last-event-id")
        or request.query_params.get("lastEventId")
        or request.query_params.get("last_event_id")
    )
    return candidate if candidate and is_event_id(candidate) else None

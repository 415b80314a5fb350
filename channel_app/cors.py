"""CORS for the browser-facing routes only.

`/functions` (Channel) and `/api/` (the site's backend) are called
server-to-server, so they never send CORS headers. Neither do the development
demo's `/dev/` routes, whatever CORS_ALLOWED_ORIGINS says: their page is served
from this origin, and with `*` (handy while trying the widget on a local site)
any page the developer visits could otherwise mint tokens and fire signed calls
through them. Credentials are allowed only with an explicit origin list, never
with `*`.
"""

from __future__ import annotations

from typing import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channel_app.responses import error_response

NO_CORS_PREFIXES = ("/functions", "/api/", "/dev/")
RawHeaders = tuple[tuple[bytes, bytes], ...]


class JSONErrorCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, refusing a preflight with the service's JSON error object, not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        kept = {name: value for name, value in response.headers.items() if name not in ("content-type", "content-length")}
        return error_response(400, "CORS_REFUSED", response.body.decode(), kept)


def starlette_cors(app: ASGIApp, allowed_origins: Sequence[str]) -> CORSMiddleware:
    explicit = "*" not in allowed_origins
    return JSONErrorCORSMiddleware(
        app,
        allow_origins=list(allowed_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        allow_credentials=explicit,
        expose_headers=["Retry-After"],  # the widget backs off by it after a 429/503 from /sse/check
        max_age=600,
    )


class BrowserCORSMiddleware:
    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str]) -> None:
        self.app = app
        self.cors = starlette_cors(app, allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(NO_CORS_PREFIXES):
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)


class SimpleResponseCors:
    """The headers Starlette's CORSMiddleware adds to a simple (non-preflight)
    response, for a given Origin, worked out by that middleware itself and kept.

    The stream route adds them when its response starts, instead of passing every
    frame of a long-lived stream through the middleware's send wrapper (which also
    re-parses the headers of each response it starts: about 5 % of a connect's
    CPU in py-spy). Our responses set no CORS or Vary headers of their own, so
    appending these gives what the middleware would have sent. Preflight requests
    (OPTIONS) never reach the stream route: they take the ordinary middleware.
    """

    MAX_REMEMBERED = 256  # origins are a short configured list; any others share one answer

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self._cors = starlette_cors(_no_app, allowed_origins)
        self._remembered: dict[str | None, RawHeaders] = {}

    async def headers_for(self, origin: str | None) -> RawHeaders:
        headers = self._remembered.get(origin)
        if headers is None:
            headers = await self._work_out(origin)
            if len(self._remembered) < self.MAX_REMEMBERED:
                self._remembered[origin] = headers
        return headers

    async def _work_out(self, origin: str | None) -> RawHeaders:
        started: list[Message] = []

        async def capture(message: Message) -> None:
            started.append(message)

        request_headers = Headers(headers={} if origin is None else {"origin": origin})
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        await self._cors.send(start, send=capture, request_headers=request_headers)
        return tuple(started[0]["headers"])


def request_origin(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":
            return value.decode("latin-1")
    return None


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("only the CORS header logic of this middleware is used")

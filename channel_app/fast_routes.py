"""The two hot routes, dispatched ahead of Starlette's router.

`GET /sse/connect` and `PUT /functions[/<version>]` carry nearly all traffic.
An open stream keeps its request's whole call chain suspended for as long as
it lasts (up to MAX_STREAM_SECONDS), and every frame it writes goes back out
through each `send` wrapper of that chain. Starlette's ExceptionMiddleware,
Router, Route and request/response adapter add eight suspended coroutine frames
and two send wrappers to every stream and nothing a stream needs: it raises no
HTTPException and has one path and one method. A function call pays the same
layers once per call. So both are dispatched before them, still wrapped in
the same ServerErrorMiddleware (a JSON 500 on an unexpected error) and, for
the stream, the same browser CORS middleware as every other route. Measured
with `python -m bench` (commit message): about 5 KB less per idle
connection, less CPU per delivery and per call. Every other method or path,
HEAD included, takes the ordinary route table.

A route key is `(method, path)`; a path ending in `/*` also matches one more
path segment (`/functions/*` matches `/functions/v1`).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[ASGIApp]]


class PushApp(Starlette):
    def __init__(self, *args, fast_routes: Mapping[tuple[str, str], ASGIApp], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fast_routes = dict(fast_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            fast = self._fast_route(scope["method"], scope["path"])
            if fast is not None:
                scope["app"] = self
                await fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


    def _fast_route(self, method: str, path: str) -> ASGIApp | None:
        exact = self._fast_routes.get((method, path))
        if exact is not None or path.count("/") != 2:
            return exact
        parent, _, segment = path.rpartition("/")
        return self._fast_routes.get((method, parent + "/*")) if segment else None


def endpoint_app(endpoint: Endpoint) -> ASGIApp:
    """An ASGI app from a `request -> response` endpoint, without Starlette's exception layer."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return app

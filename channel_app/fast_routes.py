"""The two hot routes, dispatched ahead of Starlette's router.

`GET /sse/connect` and `PUT /functions[/<version>]` carry nearly all traffic.
An open stream keeps its request's whole call chain suspended for as long as
it lasts (up to MAX_STREAM_SECONDS), and every frame it writes goes back out
through each `send` wrapper of that chain. Starlette's ExceptionMiddleware,
Router, Route and request/response adapter add eight suspended coroutine frames
and two send wrappers to every stream and nothing a stream needs: it raises no
HTTPException and has one path and one method. A function call pays the same
layers once per call. So both are dispatched before them. Measured with
`python -m bench` (commit message): about 5 KB less per idle connection, less
CPU per delivery and per call. Every other method or path, HEAD included,
takes the ordinary route table.

What the skipped middleware did for these routes, `guarded_route` does with
one plain (not async) send wrapper, so a frame costs one function call on
its way out rather than a coroutine per layer: a JSON 500 from the app's
error handler when the endpoint raises before its response started (as
ServerErrorMiddleware; the exception is re-raised for uvicorn to log), and
for the stream the CORS headers of a simple response (cors.SimpleResponseCors).

A route key is `(method, path)`; a path ending in `/*` also matches one more
path segment (`/functions/*` matches `/functions/v1`).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channel_app.cors import SimpleResponseCors, request_origin
from channel_app.server_connection import forget_server_send, lost_connection_guard, remember_server_send
from channel_app.shutdown_cut import answer_if_cut

Endpoint = Callable[[Request], Awaitable[ASGIApp]]
ErrorHandler = Callable[[Request, Exception], Awaitable[ASGIApp]]


class PushApp(Starlette):
    def __init__(self, *args, fast_routes: Mapping[tuple[str, str], ASGIApp], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fast_routes = dict(fast_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        remember_server_send(scope, send)
        try:
            checked_send = lost_connection_guard(scope, send)
            fast = self._fast_route(scope["method"], scope["path"])
            if fast is None:
                await answer_if_cut(super().__call__, scope, receive, checked_send, self._draining)
                return
            scope["app"] = self
            await fast(scope, receive, checked_send)
        finally:
            forget_server_send(scope)

    def _draining(self) -> bool:
        services = getattr(self.state, "services", None)
        return services is not None and services.lifecycle.draining

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


def guarded_route(endpoint: Endpoint, on_error: ErrorHandler, cors: SimpleResponseCors | None = None) -> ASGIApp:
    """`endpoint_app(endpoint)` with a JSON 500 on an unexpected error and, given
    `cors`, the CORS headers for the request's Origin on whatever response it starts."""
    app = endpoint_app(endpoint)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        extra_headers = () if cors is None else await cors.headers_for(request_origin(scope))
        started = False

        def send_on(message: Message) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if extra_headers:
                    message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
            return send(message)

        try:
            await app(scope, receive, send_on)
        except Exception as error:
            if not started:
                response = await on_error(Request(scope, receive), error)
                await response(scope, receive, send_on)
            raise

    return guarded

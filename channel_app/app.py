"""`create_app(settings)`: routes, middleware and lifespan of channel-push."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount, Route
from sse_starlette.sse import AppStatus

from channel_app.ack_endpoint import acknowledge_event
from channel_app.cors import BrowserCORSMiddleware, SimpleResponseCors
from channel_app.demo import demo_routes
from channel_app.fast_routes import PushApp, guarded_route
from channel_app.functions import handle_function_call
from channel_app.heartbeat import heartbeat_forever
from channel_app.lifecycle import Lifecycle
from channel_app.metrics import Metrics
from channel_app.ops import metrics_endpoint, ops_assets, ops_page
from channel_app.policies import SecurityPolicies
from channel_app.publish_api import publish_endpoint
from channel_app.responses import JSONBody, error_response
from channel_app.services import running_services
from channel_app.stalls import sweep_stalled_writers_forever
from channel_app.static_assets import StaticAsset, asset_endpoint
from channel_app.status import healthz, readyz, sse_status
from channel_app.status_stream import status_stream
from channel_app.stream import connect_stream
from channel_app.stream_check import check_stream
from config.secrets import resolve_secrets
from config.settings import Settings
from sse.events import encode_retry

logger = logging.getLogger("channel_push")

HTTP_ERROR_TYPES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app. Missing secrets and invalid security settings fail here
    (SecretRefused, InvalidConfiguration), before anything listens."""
    settings = resolve_secrets(settings or Settings()).settings
    policies = SecurityPolicies.from_settings(settings)
    lifecycle = Lifecycle()
    metrics = Metrics(settings.metrics_event_names)
    # sse-starlette patches uvicorn's Server.handle_exit when imported and, on
    # the exit signal, cancels every EventSourceResponse on its own: racing our
    # drain (which sends the retry hint first) and, being process-wide, leaking
    # into other servers in the same process. Our drain (lifecycle.py,
    # server.py) is the one mechanism; this switches sse-starlette's off.
    AppStatus.disable_automatic_graceful_drain()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running_services(settings, policies, lifecycle, metrics) as services:
            app.state.services = services
            retry = encode_retry(settings.retry_ms)
            lifecycle.on_drain(lambda: _end_every_stream(services, retry))
            loops = [
                asyncio.create_task(heartbeat_forever(services.broker, settings.heartbeat_seconds)),
                asyncio.create_task(
                    sweep_stalled_writers_forever(services.broker.registry, settings.send_timeout_seconds, lifecycle)
                ),
                asyncio.create_task(services.body_deadlines.sweep_forever()),
            ]
            try:
                yield
            finally:
                lifecycle.begin_drain()
                for loop in loops:
                    loop.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await loop

    widget = StaticAsset.load("widget.js", "text/javascript")
    cors = {"allowed_origins": settings.cors_allowed_origins}
    stream_app = guarded_route(connect_stream, _unexpected_error, SimpleResponseCors(settings.cors_allowed_origins))
    functions_app = guarded_route(handle_function_call, _unexpected_error)
    app = PushApp(
        fast_routes={
            ("GET", "/sse/connect"): stream_app,
            ("PUT", "/functions"): functions_app,
            ("PUT", "/functions/*"): functions_app,
        },
        routes=[
            Route("/functions", handle_function_call, methods=["PUT"]),
            Route("/functions/{version}", handle_function_call, methods=["PUT"]),
            Route("/sse/connect", connect_stream, methods=["GET"]),
            Route("/sse/check", check_stream, methods=["GET"]),
            Route("/sse/ack", acknowledge_event, methods=["POST"]),
            Route("/api/publish", publish_endpoint, methods=["POST"]),
            Route("/sse/status", sse_status, methods=["GET"]),
            Route("/sse/status/stream", status_stream, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/ops", ops_page, methods=["GET"]),
            Mount("/ops/assets", ops_assets(), name="ops_assets"),
            Route("/widget.js", asset_endpoint(widget), methods=["GET"]),
            *demo_routes(settings, widget),
        ],
        middleware=[Middleware(BrowserCORSMiddleware, **cors)],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        lifespan=lifespan,
    )
    # Starlette would answer `/sse/connect/` with a 307 to the same URL, query (tokens
    # included) and all, on whatever Host the request named and on plain http behind a
    # TLS proxy. A path with a stray slash is not ours: 404 with the error object.
    app.router.redirect_slashes = False
    app.state.lifecycle = lifecycle
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.widget_version = widget.version
    return app


def _end_every_stream(services, retry: bytes) -> None:
    ended = services.broker.registry.close_all("shutdown", retry)
    logger.info("draining: ending every stream with a retry hint", extra={"fields": {"streams": ended}})


async def _http_error(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, HTTPException)
    error_type = HTTP_ERROR_TYPES.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, error_type, str(exc.detail), exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONBody:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "an internal error occurred; it has been logged")

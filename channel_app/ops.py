"""Operator endpoints: `GET /metrics` (Prometheus) and `GET /ops` (live charts).

The page is a static HTML file; its script and style are served from
`/ops/assets/` (channel_app/static/ops/, package data) and it draws from
`/sse/status/stream`. Nothing comes from a CDN, so it works offline.

The page itself holds no data, so it is served without the ops token (which
guards the stream it draws from): opened as `/ops#token=...` (a fragment, never
sent, so no proxy logs it), its script keeps the token for the tab, takes it out
of the address bar, and reads the stream with it in a header; a reload still
works. It was behind the token too, and a reload (the token gone from the URL)
got a 401 (review reproduction). Production without OPS_TOKEN still refuses it.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from channel_app.ops_auth import ops_disabled, ops_refusal

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # the page URL may carry the ops token
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


async def metrics_endpoint(request: Request) -> Response:
    services = request.app.state.services
    refusal = ops_refusal(request, services.settings, open_when_unset=True)
    if refusal is not None:
        return refusal
    services.metrics.broker_state(services.broker.name, await services.broker.is_healthy())
    return Response(services.metrics.render(), headers={"Content-Type": services.metrics.content_type})


async def ops_page(request: Request) -> Response:
    refusal = ops_disabled(request.app.state.settings, open_when_unset=False)
    if refusal is not None:
        return refusal
    page = files("channel_app").joinpath("static", "ops.html").read_bytes()
    return Response(page, media_type="text/html", headers=PAGE_HEADERS)


def ops_assets() -> StaticFiles:
    return StaticFiles(packages=[("channel_app", "static/ops")])

"""CORS for the browser-facing routes only.

`/functions` (Channel) and `/api/` (the site's backend) are called
server-to-server, so they never send CORS headers. Credentials are allowed only with an explicit origin list, never
with `*`.
"""

from __future__ import annotations

from typing import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

SERVER_TO_SERVER_PREFIXES = ("/functions", "/api/")


class BrowserCORSMiddleware:
    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str]) -> None:
        self.app = app
        explicit = "*" not in allowed_origins
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            allow_credentials=explicit,
            expose_headers=["Retry-After"],  # the widget backs off by it after a 429/503 from /sse/check
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(SERVER_TO_SERVER_PREFIXES):
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)

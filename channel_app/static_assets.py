"""Files the service serves to browsers (`GET /widget.js`), with validators for caching.

Each file is read once, when the app is built. Its version is a prefix of the
SHA-256 of its bytes and doubles as the ETag, so a changed file is a new
version without anyone remembering to bump a number.

Caching: `/widget.js` is cached for five minutes and then revalidated
(If-None-Match -> 304), so sites that embed the plain URL pick up a fix
quickly. `/widget.js?v=<version>` names one exact file and is cached for a
year as immutable; a `v` that is not the current version gets the current
file with the short policy, never the long one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

SHORT_CACHE = "public, max-age=300"
LONG_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class StaticAsset:
    body: bytes
    media_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @classmethod
    def load(cls, name: str, media_type: str) -> StaticAsset:
        body = (files("channel_app") / "static" / name).read_bytes()
        return cls(body, media_type, hashlib.sha256(body).hexdigest()[:16])


def asset_endpoint(asset: StaticAsset) -> Callable[[Request], Awaitable[Response]]:
    async def serve_asset(request: Request) -> Response:
        cache_control = LONG_CACHE if request.query_params.get("v") == asset.version else SHORT_CACHE
        headers = {
            "ETag": asset.etag,
            "Cache-Control": cache_control,
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",  # embedded by other sites' pages
        }
        if _matches(request.headers.get("if-none-match"), asset.etag):
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return serve_asset


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = (candidate.strip().removeprefix("W/") for candidate in if_none_match.split(","))
    return any(candidate in (etag, "*") for candidate in candidates)

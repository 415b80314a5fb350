"""Who counts as an operator: the holder of OPS_TOKEN.

The token arrives as `Authorization: Bearer ...`, or as the `token` query
parameter for EventSource-based views that cannot set headers. It is compared
in constant time. With OPS_TOKEN unset nobody is an operator.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from config.settings import Settings


def presented_ops_token(request: Request, allow_query: bool = False) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token") if allow_query else None


def is_operator(request: Request, settings: Settings, allow_query: bool = False) -> bool:
    if settings.ops_token is None:
        return False
    presented = presented_ops_token(request, allow_query)
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), settings.ops_token.get_secret_value().encode())

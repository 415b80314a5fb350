"""Who may use the publish API: an API key, or a JWT carrying the publish scope.

Credentials arrive as `X-API-Key: <key>` or `Authorization: Bearer <key or JWT>`.
An API key is one of PUBLISH_API_KEYS (security/api_keys.py, constant time).
A JWT is accepted when PUBLISH_JWT_SCOPE is set: it must verify with the same
verifier as client tokens (CLIENT_JWT_*: keys, algorithms, audience, issuer)
and its `scope` claim (space-separated string, or list) must include that
scope. So a browser's client token, which has no such scope, never publishes:
mint publish tokens only on your backend. With neither configured the API does
not exist (404).

Answers: no credential 401 `UNAUTHORIZED`, an unknown key or a bad token 401
(`UNAUTHORIZED` / `INVALID_TOKEN`), a valid token without the scope 403 `FORBIDDEN`,
and 503 `UNAVAILABLE` with Retry-After while the JWKS cannot be fetched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from channel_app.responses import BEARER_CHALLENGE
from security.jwks import JwksUnavailable
from security.tokens import TokenRejected


@dataclass(frozen=True)
class Publisher:
    name: str  # "key:<fingerprint>" or "jwt:<sub>": rate limits, idempotency, logs


class PublishAuthFailed(Exception):
    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.headers = BEARER_CHALLENGE if status == 401 else headers


def publish_enabled(services) -> bool:
    return services.publish_keys.configured or bool(services.settings.publish_jwt_scope)


def _credential(request: Request) -> str | None:
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


async def authenticate_publisher(services, request: Request) -> Publisher:
    credential = _credential(request)
    if credential is None:
        raise PublishAuthFailed(401, "UNAUTHORIZED", "an API key or a publish token is required")
    fingerprint = services.publish_keys.match(credential)
    if fingerprint is not None:
        return Publisher(f"key:{fingerprint}")
    scope = services.settings.publish_jwt_scope
    if not scope or credential.count(".") != 2:
        raise PublishAuthFailed(401, "UNAUTHORIZED", "the API key is not valid")
    try:
        claims = await services.tokens.verify(credential)
    except TokenRejected as rejected:
        raise PublishAuthFailed(401, "INVALID_TOKEN", rejected.message) from None
    except JwksUnavailable as unavailable:
        raise PublishAuthFailed(503, "UNAVAILABLE", str(unavailable), unavailable.retry_after_header) from None
    if claims.expires_at <= time.time():
        raise PublishAuthFailed(401, "INVALID_TOKEN", "the token has expired")
    if scope not in _scopes(claims.raw.get("scope")):
        raise PublishAuthFailed(403, "FORBIDDEN", f"the token lacks the '{scope}' scope")
    return Publisher(f"jwt:{claims.subject[:128]}")


def _scopes(claim: object) -> set[str]:
    if isinstance(claim, str):
        return set(claim.split())
    if isinstance(claim, list):
        return {item for item in claim if isinstance(item, str)}
    return set()

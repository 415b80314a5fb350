"""Development tokens this service itself accepts (the `token` CLI and the demo's /dev/token).

Signed with CLIENT_JWT_SECRET under the first HMAC algorithm CLIENT_JWT_ALGORITHMS
allows (HS256 when it is empty), and carrying CLIENT_JWT_AUDIENCE and
CLIENT_JWT_ISSUER when they are set: minted as plain HS256 with neither, they
were refused by the same service (review reproduction).
"""

from __future__ import annotations

from typing import Sequence

from config.settings import Settings
from security.hmac_jws import HASH_BY_ALGORITHM
from security.tokens import mint_client_token


def mint_accepted_token(
    settings: Settings, client_id: str, ttl_seconds: float, topics: Sequence[str] = (), scope: str | None = None
) -> str:
    """ValueError when no secret is set, no HMAC algorithm is allowed, or an input is bad."""
    if settings.client_jwt_secret is None:
        raise ValueError("CLIENT_JWT_SECRET is not set; tokens come from your identity provider")
    if settings.client_jwt_public_key or settings.client_jwt_jwks_url:
        raise ValueError("tokens are checked with CLIENT_JWT_PUBLIC_KEY or CLIENT_JWT_JWKS_URL; they come from your identity provider")
    allowed = settings.client_jwt_algorithms or ["HS256"]
    algorithm = next((name for name in allowed if name in HASH_BY_ALGORITHM), None)
    if algorithm is None:
        raise ValueError(f"CLIENT_JWT_ALGORITHMS allows no HMAC algorithm ({', '.join(allowed)}); tokens come from your identity provider")
    return mint_client_token(
        settings.client_jwt_secret.get_secret_value(), client_id, ttl_seconds, topics=topics, scope=scope,
        audience=settings.client_jwt_audience, issuer=settings.client_jwt_issuer, algorithm=algorithm,
    )

"""`python -m channel_app token`: a client token for development and testing."""

from __future__ import annotations

import sys

from config.settings import Settings
from security.tokens import mint_client_token, parse_duration


def print_token(settings: Settings, client_id: str, ttl: str, topics: list[str], scope: str | None = None) -> int:
    if settings.client_jwt_secret is None:
        print("channel-push: CLIENT_JWT_SECRET is not set; tokens come from your identity provider", file=sys.stderr)
        return 2
    try:
        seconds = parse_duration(ttl)
    except ValueError as invalid:
        print(f"channel-push: --ttl: {invalid}", file=sys.stderr)
        return 2
    try:
        token = mint_client_token(settings.client_jwt_secret.get_secret_value(), client_id, seconds, topics=topics, scope=scope)
    except ValueError as invalid:
        print(f"channel-push: {invalid}", file=sys.stderr)
        return 2
    print(token)
    return 0

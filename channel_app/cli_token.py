"""`python -m channel_app token`: a client token for development and testing."""

from __future__ import annotations

import sys

from channel_app.dev_tokens import mint_accepted_token
from config.settings import Settings
from security.tokens import parse_duration
from sse.names import InvalidName, check_client_id


def print_token(settings: Settings, client_id: str, ttl: str, topics: list[str], scope: str | None = None) -> int:
    try:
        seconds = parse_duration(ttl)
    except ValueError as invalid:
        print(f"channel-push: --ttl: {invalid}", file=sys.stderr)
        return 2
    try:
        # A backend's publish token names its backend, not a visitor: any subject will do.
        token = mint_accepted_token(settings, client_id if scope else check_client_id(client_id), seconds, topics, scope)
    except InvalidName as invalid:
        print(f"channel-push: --client-id: {invalid}", file=sys.stderr)
        return 2
    except ValueError as invalid:
        print(f"channel-push: {invalid}", file=sys.stderr)
        return 2
    print(token)
    return 0

"""Settings and apps for tests: explicit values, never the developer's .env."""

from __future__ import annotations

from typing import Any

from channel_app.app import create_app
from config.secrets import REQUIRED_SECRETS, development_secret
from config.settings import Settings
from security.tokens import mint_client_token
from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "production",
        "channel_signing_key": SIGNING_KEY_HEX,
        "client_jwt_secret": CLIENT_JWT_SECRET,
        "redirect_allowed_hosts": ["shop.example.com", "*.example.org"],
        "heartbeat_seconds": 15,
        "instance_id": "test-instance",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


# What `python -m channel_app` runs on with no secrets set: the only secrets the demo serves with.
DEVELOPMENT_SECRETS = {name: development_secret(name) for name in REQUIRED_SECRETS}


def make_app(**overrides: Any):
    return create_app(make_settings(**overrides))


def client_token(client_id: str, ttl_seconds: float = 600, **claims: Any) -> str:
    return mint_client_token(CLIENT_JWT_SECRET, client_id, ttl_seconds, **claims)

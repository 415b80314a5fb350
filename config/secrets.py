"""Which secrets the service needs, and what happens when one is missing.

Production refuses to start without them. Development fills each missing one
with a fixed, publicly known development value, so `python -m channel_app`
works out of the box and tokens minted with `python -m channel_app token`
stay valid across restarts. The CLI prints a loud banner naming each one;
these values protect nothing and must never reach production.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import SecretStr

from config.settings import Settings

REQUIRED_SECRETS: dict[str, str] = {
    "channel_signing_key": "CHANNEL_SIGNING_KEY",
    "client_jwt_secret": "CLIENT_JWT_SECRET",
}


class MissingSecret(RuntimeError):
    """A required secret is unset in production; the message is one line naming it."""


@dataclass(frozen=True)
class ResolvedSettings:
    settings: Settings
    generated: dict[str, str]  # env var name -> generated development value


def resolve_secrets(settings: Settings) -> ResolvedSettings:
    missing = [name for name in REQUIRED_SECRETS if getattr(settings, name) is None]
    if settings.client_jwt_public_key or settings.client_jwt_jwks_url:
        missing = [name for name in missing if name != "client_jwt_secret"]
    if not missing:
        return ResolvedSettings(settings, {})
    if settings.is_production:
        env_name = REQUIRED_SECRETS[missing[0]]
        raise MissingSecret(f"{env_name} must be set when APP_ENV=production")
    generated = {REQUIRED_SECRETS[name]: development_secret(name) for name in missing}
    updates = {name: SecretStr(generated[REQUIRED_SECRETS[name]]) for name in missing}
    return ResolvedSettings(settings.model_copy(update=updates), generated)


def development_secret(name: str) -> str:
    return hashlib.sha256(f"channel-push development {name}".encode()).hexdigest()

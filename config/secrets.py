"""Which secrets the service needs, and what happens when one is missing.

Production refuses to start without them, with one of the public development
values below, or with one shorter than 32 characters (16 bytes of hex for a
signing key; HS256 wants a key of at least 256 bits, RFC 7518 3.2). Development
fills each missing one with a fixed, publicly known development value, so
`python -m channel_app` works out of the box and tokens minted with
`python -m channel_app token` stay valid across restarts. The CLI prints a loud
banner naming each one; these values protect nothing.
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
CHECKED_IN_PRODUCTION = {**REQUIRED_SECRETS, "channel_signing_key_previous": "CHANNEL_SIGNING_KEY_PREVIOUS"}
MIN_PRODUCTION_SECRET_CHARS = 32


class SecretRefused(RuntimeError):
    """A secret production cannot run with (unset, public or short); the message is one line naming it."""


@dataclass(frozen=True)
class ResolvedSettings:
    settings: Settings
    generated: dict[str, str]  # env var name -> generated development value


def resolve_secrets(settings: Settings) -> ResolvedSettings:
    missing = [name for name in REQUIRED_SECRETS if getattr(settings, name) is None]
    if settings.client_jwt_public_key or settings.client_jwt_jwks_url:
        missing = [name for name in missing if name != "client_jwt_secret"]
    if settings.is_production:
        if missing:
            raise SecretRefused(f"{REQUIRED_SECRETS[missing[0]]} must be set when APP_ENV=production")
        _refuse_weak_secrets(settings)
    if not missing:
        return ResolvedSettings(settings, {})
    generated = {REQUIRED_SECRETS[name]: development_secret(name) for name in missing}
    updates = {name: SecretStr(generated[REQUIRED_SECRETS[name]]) for name in missing}
    return ResolvedSettings(settings.model_copy(update=updates), generated)


def _refuse_weak_secrets(settings: Settings) -> None:
    for name, env_name in CHECKED_IN_PRODUCTION.items():
        secret = getattr(settings, name)
        if secret is None:
            continue
        value = secret.get_secret_value().strip()
        # A signing key is read as hex, which ignores case and spaces between bytes:
        # the public value in capitals, or spaced out, is the same key.
        spelled = "".join(value.split()).lower()
        if any(spelled == development_secret(known) for known in REQUIRED_SECRETS):
            raise SecretRefused(f"{env_name} is a public development value; set your own when APP_ENV=production")
        if len(value) < MIN_PRODUCTION_SECRET_CHARS:
            raise SecretRefused(f"{env_name} is too short for APP_ENV=production (at least {MIN_PRODUCTION_SECRET_CHARS} characters)")


def development_secret(name: str) -> str:
    return hashlib.sha256(f"channel-push development {name}".encode()).hexdigest()

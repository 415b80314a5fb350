"""Security policies derived from settings alone: no I/O, built in `create_app`.

Building them there means a bad key, allow-list entry or rate fails before
the server listens, with one line naming the problem.
"""

from __future__ import annotations

import re

from dataclasses import dataclass

from config.settings import Settings
from security.api_keys import ApiKeys
from security.ratelimit import Rate
from security.redirects import HostAllowList, RedirectPolicy
from security.signature import SignatureVerifier, decode_signing_key
from security.tokens import ClientTokenVerifier, TokenVerifierConfig

RATE_SETTINGS = {
    "function_channel": "rate_limit_function_per_channel",
    "function_client": "rate_limit_function_per_client",
    "connect_ip": "rate_limit_connect_per_ip",
    "connect_client": "rate_limit_connect_per_client",
    "publish_key": "rate_limit_publish_per_key",
}


class InvalidConfiguration(ValueError):
    """A setting has a value the service cannot run with; the message names it."""


@dataclass(frozen=True)
class SecurityPolicies:
    signatures: SignatureVerifier
    tokens: ClientTokenVerifier
    redirects: RedirectPolicy
    rates: dict[str, Rate]
    publish_keys: ApiKeys = ApiKeys()

    @classmethod
    def from_settings(cls, settings: Settings) -> "SecurityPolicies":
        return cls(
            signatures=signature_verifier(settings),  # names the key at fault itself
            tokens=_named("CLIENT_JWT_*", token_verifier, settings, _TOKEN_SETTING_NAMES),
            redirects=redirect_policy(settings),  # names the list at fault itself
            rates={scope: _named(name.upper(), _rate_parser(name), settings) for scope, name in RATE_SETTINGS.items()},
            publish_keys=_named("PUBLISH_API_KEYS", publish_keys, settings),
        )


# The token verifier's own names for what comes from these settings.
_TOKEN_SETTING_NAMES = {
    r"\bhs256_secret\b": "CLIENT_JWT_SECRET",
    r"\bpublic_key_pem\b": "CLIENT_JWT_PUBLIC_KEY",
    r"\bjwks_url\b": "CLIENT_JWT_JWKS_URL",
    r"\bleeway_seconds\b": "CLIENT_JWT_LEEWAY_SECONDS",
    r"\balgorithms\b": "CLIENT_JWT_ALGORITHMS",
}


def _named(setting: str, build, settings: Settings, renames: dict[str, str] | None = None):
    """`build(settings)`, its ValueError an InvalidConfiguration naming the setting (or,
    with `renames`, the variables its message names in the builder's own words)."""
    try:
        return build(settings)
    except ValueError as invalid:
        message = str(invalid)
        for internal, variable in (renames or {}).items():
            message = re.sub(internal, variable, message)
        named_itself = renames is not None and message.startswith(tuple(renames.values()))
        raise InvalidConfiguration(message if named_itself else f"{setting}: {message}") from None


def _rate_parser(setting_name: str):
    return lambda settings: Rate.parse(getattr(settings, setting_name))


def signature_verifier(settings: Settings) -> SignatureVerifier:
    keys = {"CHANNEL_SIGNING_KEY": settings.channel_signing_key, "CHANNEL_SIGNING_KEY_PREVIOUS": settings.channel_signing_key_previous}
    return SignatureVerifier(_named(name, lambda _: decode_signing_key(key.get_secret_value()), settings) for name, key in keys.items() if key is not None)


def redirect_policy(settings: Settings) -> RedirectPolicy:
    https_hosts, http_hosts = settings.redirect_allowed_hosts, settings.redirect_http_hosts
    if not settings.is_production and not https_hosts and not http_hosts:
        # Development default: the service's own demo pages on this machine.
        # PORT=0 (any free port) has no port to name yet: the default-port entries must do.
        on_port = [f"localhost:{settings.port}", f"127.0.0.1:{settings.port}"] if settings.port else []
        http_hosts = ["localhost", "127.0.0.1", *on_port]
    # A channel's own list replaces both default lists: https only, its hosts only.
    per_channel = {
        channel_id: _named("REDIRECT_ALLOWED_HOSTS_BY_CHANNEL", lambda _, hosts=hosts: HostAllowList.parse(hosts), settings)
        for channel_id, hosts in settings.redirect_allowed_hosts_by_channel.items()
    }
    _named("REDIRECT_HTTP_HOSTS", lambda _: HostAllowList.parse([], http_hosts), settings)  # each list named as itself
    return RedirectPolicy(_named("REDIRECT_ALLOWED_HOSTS", lambda _: HostAllowList.parse(https_hosts, http_hosts), settings), per_channel)


def publish_keys(settings: Settings) -> ApiKeys:
    keys = settings.publish_api_keys
    return ApiKeys.parse(keys.get_secret_value() if keys is not None else None)


def token_verifier(settings: Settings) -> ClientTokenVerifier:
    """Only the configured key source is passed on: the verifier refuses ambiguity.
    JWKS keys are fetched with a short-lived httpx client when needed.

    Production refuses a public key or JWKS URL without CLIENT_JWT_AUDIENCE. Such
    keys usually belong to an identity provider that signs tokens for many
    applications; without an audience, a visitor's token meant for any of them
    (an access token leaked to a third party, say) would open that visitor's
    streams here (RFC 8725 3.9). CLIENT_JWT_SECRET is this service's own, so no
    other application's tokens verify with it."""
    secret = settings.client_jwt_secret.get_secret_value() if settings.client_jwt_secret else None
    public_key, jwks_url = settings.client_jwt_public_key, settings.client_jwt_jwks_url
    if settings.is_production and (public_key or jwks_url) and not settings.client_jwt_audience:
        raise ValueError(
            "CLIENT_JWT_AUDIENCE must be set when APP_ENV=production and tokens are checked with a public key "
            "or JWKS URL: without it, tokens your identity provider issued for other applications would be accepted"
        )
    config = TokenVerifierConfig(
        hs256_secret=None if (public_key or jwks_url) else secret,
        public_key_pem=public_key,
        jwks_url=jwks_url,
        algorithms=tuple(settings.client_jwt_algorithms),
        audience=settings.client_jwt_audience,
        issuer=settings.client_jwt_issuer,
        leeway_seconds=settings.client_jwt_leeway_seconds,
    )
    return ClientTokenVerifier(config)

"""Service settings, read from the environment and an optional `.env` file.

Every field maps to an upper-case environment variable of the same name
(`heartbeat_seconds` -> `HEARTBEAT_SECONDS`). Building a `Settings` does no I/O
beyond reading the environment, so tests build their own with
`Settings(_env_file=None, **overrides)`.

Comma-separated lists (`REDIRECT_ALLOWED_HOSTS=shop.example.com,*.example.com`)
are accepted for every list field; a JSON array works too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

import idna
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

CommaList = Annotated[list[str], NoDecode]
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+", re.IGNORECASE)
MAX_OPS_TOKEN_CHARS = 1024  # a presented ops token longer than this is refused unread
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _port_is_valid(parts: SplitResult) -> bool:
    """Whether the URL's port, if any, is a number from 0 to 65535 (`.port` raises otherwise)."""
    try:
        parts.port  # noqa: B018
    except ValueError:
        return False
    return True


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _as_browsers_send(origin: str) -> str:
    """`origin` as a browser's Origin header writes it (the URL standard's serialisation),
    or an entry would match nothing: scheme and host in lower case, a Unicode host in
    punycode by UTS #46 as browsers map it (`faß` stays `ß`: Python's own "idna" codec
    would write `fass`), an IPv6 address compressed, the port as a plain number and
    left out when it is the scheme's default."""
    if origin == "*":
        return origin
    scheme, _, rest = origin.partition("://")
    host, _, port = rest.rpartition(":") if ":" in rest.rpartition("]")[2] else (rest, "", "")
    scheme = scheme.lower()
    try:
        if host.startswith("["):
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        elif not host.isascii():
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        port = str(int(port)) if port else ""
    except (ValueError, idna.IDNAError):
        raise ValueError(f"{origin!r} is not an origin: its host or port is not valid") from None
    if port == _DEFAULT_PORTS.get(scheme):
        port = ""
    return f"{scheme}://{host.lower()}" + (f":{port}" if port else "")


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        allow_inf_nan=False,  # HEARTBEAT_SECONDS=inf started, and no heartbeat was ever sent
    )

    app_env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    reuse_port: bool = False
    # Proxies whose X-Forwarded-For uvicorn trusts. uvicorn reads the variable from the
    # environment only; as a setting it also comes from .env like every other one.
    forwarded_allow_ips: str | None = None
    instance_id: str = Field(default_factory=_default_instance_id)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] | None = None  # None: json in production, text in development

    # Channel Talk
    channel_signing_key: SecretStr | None = None
    channel_signing_key_previous: SecretStr | None = None
    allowed_channel_ids: CommaList = []
    channel_app_id: str | None = None
    channel_app_secret: SecretStr | None = None
    channel_api_base_url: str = "https://app-store-api.channel.io"
    channel_api_timeout_seconds: float = Field(3.0, gt=0, le=30)
    chat_fallback_enabled: bool = True

    # Browser clients: exactly one of the secret, the public key or the JWKS URL
    client_jwt_secret: SecretStr | None = None
    client_jwt_public_key: str | None = None
    client_jwt_jwks_url: str | None = None
    client_jwt_algorithms: CommaList = []
    client_jwt_audience: str | None = None
    client_jwt_issuer: str | None = None
    client_jwt_leeway_seconds: float = Field(30.0, ge=0, le=300)
    client_token_cookie: str = "channel_push_token"
    cors_allowed_origins: CommaList = []

    # Redirect allow-list
    redirect_allowed_hosts: CommaList = []
    redirect_http_hosts: CommaList = []
    redirect_allowed_hosts_by_channel: Annotated[dict[str, list[str]], NoDecode] = {}

    # Rate limits ("count/period": 60/minute, 10/second, 5/10s); shared through Redis when REDIS_URL is set
    rate_limits_enabled: bool = True
    rate_limit_function_per_channel: str = "600/minute"
    rate_limit_function_per_client: str = "60/minute"
    rate_limit_connect_per_ip: str = "120/minute"
    rate_limit_connect_per_client: str = "30/minute"
    rate_limit_publish_per_key: str = "600/minute"

    # Broker
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(1.0, gt=0, le=60)
    # Every key and pub/sub channel starts with it. Pub/sub ignores database numbers, so
    # two deployments on one Redis server must differ here: by default the database
    # number is part of it ("cp:" for database 0, "cp:5:" for /5).
    redis_key_prefix: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    # Streams. Durations have upper bounds too: HEARTBEAT_SECONDS=1e9 made each heartbeat
    # round allocate millions of slices, and a TTL of 1e20 s is refused by Redis.
    heartbeat_seconds: float = Field(15.0, gt=0, le=600)
    retry_ms: int = Field(3000, ge=0, le=3_600_000)
    send_timeout_seconds: float = Field(10.0, gt=0, le=600)
    # Counts are bounded as well: HISTORY_SIZE=1e20 started, then every Redis delivery failed.
    connection_queue_size: int = Field(64, ge=2, le=100_000)
    max_connections_per_client: int = Field(5, ge=1, le=1000)
    max_connections: int = Field(20000, ge=1, le=10_000_000)
    max_stream_seconds: float = Field(1800.0, gt=0, le=86400)
    history_size: int = Field(100, ge=0, le=100_000)
    history_ttl_seconds: float = Field(300.0, gt=0, le=604800)

    # Store-and-forward for clients with no open stream (`queueIfOffline`)
    queue_if_offline_default: bool = False
    queue_ttl_seconds: float = Field(30.0, gt=0, le=86400)
    queue_size: int = Field(20, ge=1, le=10_000)

    # Function calls (and the publish API)
    max_body_bytes: int = Field(65536, ge=256, le=16 * 1024 * 1024)
    body_timeout_seconds: float = Field(10.0, gt=0, le=300)  # for the whole request body to arrive
    allow_broadcast: bool = False

    # Topics and the publish API for the site's own backend
    max_topics_per_connection: int = Field(20, ge=1, le=100)
    publish_api_keys: SecretStr | None = None  # comma-separated or a JSON array; each at least 16 characters
    publish_jwt_scope: str | None = None  # e.g. "publish": client-verifier JWTs with this scope may publish

    # Operations
    ops_token: SecretStr | None = None
    shutdown_grace_seconds: float = Field(5.0, ge=0, le=3600)
    status_stream_seconds: float = Field(2.0, gt=0, le=3600)
    metrics_event_names: CommaList = []  # publish API event names with their own metric label

    @field_validator(
        "allowed_channel_ids",
        "client_jwt_algorithms",
        "cors_allowed_origins",
        "redirect_allowed_hosts",
        "redirect_http_hosts",
        "metrics_event_names",
        mode="before",
    )
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            items = json.loads(text)
            # Channel ids are numbers in Channel's own JSON: [1, 2] lists them as well as ["1", "2"].
            return [str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in items] if isinstance(items, list) else items
        return [item.strip() for item in text.split(",") if item.strip()]

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        """Comma-separated, as uvicorn takes it, or a JSON array like every list setting."""
        if isinstance(value, str) and value.strip().startswith("["):
            items = json.loads(value)
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise ValueError("a JSON array of addresses must hold only strings")
            return ",".join(items)
        return value

    @field_validator(
        "redis_url", "redis_key_prefix", "channel_app_id", "channel_app_secret", "channel_signing_key", "channel_signing_key_previous", "client_jwt_secret", "client_jwt_public_key", "client_jwt_jwks_url", "client_jwt_audience", "client_jwt_issuer",
        "log_format", "ops_token", "publish_api_keys", "publish_jwt_scope",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ops_token", mode="before")
    @classmethod
    def _ops_token(cls, value: Any) -> Any:
        """Trimmed, as every secret is: one read from a file ends with a newline, which
        no `Authorization` header can carry (every presented token would be refused)."""
        if isinstance(value, str):
            value = value.strip()
            if len(value) > MAX_OPS_TOKEN_CHARS:
                raise ValueError(f"at most {MAX_OPS_TOKEN_CHARS} characters (a longer one is never accepted)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        parts = urlsplit(value)
        if not _port_is_valid(parts):
            raise ValueError("the port is not a number from 0 to 65535")
        if parts.scheme != "unix" and parts.path not in ("", "/") and not parts.path[1:].isdigit():
            # redis-py would silently use database 0 for /abc.
            raise ValueError(f"the database after the host must be a number (got {parts.path[1:]!r})")
        return value

    @field_validator("instance_id", mode="before")
    @classmethod
    def _blank_instance_id_is_default(cls, value: Any) -> Any:
        return _default_instance_id() if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                # A browser's Origin never has a path or a trailing slash: such an entry
                # would match nothing, and the widget would fail without a word.
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash (or *)")
        return [_as_browsers_send(origin) for origin in origins]

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str | None) -> str | None:
        for item in (value or "").split(","):
            item = item.strip()
            if item and item != "*" and not item.startswith("unix:"):
                try:
                    ipaddress.ip_network(item)  # strict, as uvicorn reads it: 127.0.0.1/8 matches nothing there
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or network without host bits (or *)") from None
        return value

    @field_validator("client_token_cookie")
    @classmethod
    def _cookie_name(cls, value: str) -> str:
        if not _COOKIE_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)")
        return value

    @field_validator("channel_api_base_url")
    @classmethod
    def _channel_api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or not _port_is_valid(parts):
            raise ValueError(f"{value!r} is not an http(s) URL with a valid host and port")
        return value

    @field_validator("redirect_allowed_hosts_by_channel", mode="before")
    @classmethod
    def _hosts_by_channel(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError('must be a JSON object of channel id to hosts, e.g. {"123": ["shop.example.com"]}') from None
        return value

    @model_validator(mode="after")
    def _one_client_token_key(self) -> "Settings":
        keys = [name for name, value in (
            ("CLIENT_JWT_SECRET", self.client_jwt_secret),
            ("CLIENT_JWT_PUBLIC_KEY", self.client_jwt_public_key),
            ("CLIENT_JWT_JWKS_URL", self.client_jwt_jwks_url),
        ) if value is not None]
        if len(keys) > 1:
            # Only one is used: the others would be ignored without a word, and tokens
            # minted with the secret (the `token` command) refused.
            raise ValueError(f"set only one of {' and '.join(keys)}: client tokens are checked with exactly one key")
        return self

    @model_validator(mode="after")
    def _channel_api_over_https_in_production(self) -> "Settings":
        if self.is_production and not self.channel_api_base_url.startswith("https://"):
            raise ValueError("CHANNEL_API_BASE_URL must be https:// in production: the App Secret travels to it")
        return self

    @property
    def effective_redis_key_prefix(self) -> str:
        if self.redis_key_prefix is not None:
            return self.redis_key_prefix
        database = parse_url(self.redis_url).get("db") if self.redis_url else None
        return f"cp:{database}:" if database else "cp:"

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.is_production else "text")

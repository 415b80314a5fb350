"""Verify the JWT with which a browser proves the clientId of its SSE stream.

A forged or stolen stream lets an attacker steer a visitor's browser, so every
check fails closed with TokenRejected, whose text never contains the token.

Policy decisions:
- Algorithms come from the config only, never from the token header, and one
  verifier never mixes HMAC with public-key algorithms.
- `aud` is checked only when an audience is configured; otherwise an `aud`
  claim in the token is ignored. `iss` likewise.
- `exp` and a non-empty string `sub` are required; `nbf`/`iat` are honoured when
  present. All three must be JSON numbers.
- With a JWKS the token must name its key with `kid`.

(Over 200 lines: the policy above, the table of rejection reasons and the
one-parse verify path read best together; key loading and JWKS live in
security/keys.py and security/jwks.py.)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx
import jwt
from jwt import exceptions as jwt_errors
from jwt.types import Options

from security.hmac_jws import HASH_BY_ALGORITHM, HmacJwsVerifier
from security.jwks import JwksKeyCache, UnknownKeyId
from security.keys import (
    HMAC_MIN_SECRET_BYTES, PUBLIC_KEY_ALGORITHMS, load_public_key, require_hmac_secret, require_strong_secret,
)
from security.token_claims import check_registered_claims
from security.token_rejection import TokenRejected, malformed, missing_claim, rejected

__all__ = ["ClientClaims", "ClientTokenVerifier", "TokenRejected", "TokenVerifierConfig", "mint_client_token"]

MAX_TOKEN_CHARS = 8 * 1024
MAX_SUBJECT_CHARS = 256
MAX_LEEWAY_SECONDS = 300
KEY_SOURCES = ("hs256_secret", "public_key_pem", "jwks_url")
REJECTIONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "expired"),
    (jwt_errors.ImmatureSignatureError, "not_yet_valid"),
    (jwt_errors.InvalidAudienceError, "bad_audience"),
    (jwt_errors.InvalidIssuerError, "bad_issuer"),
    (jwt_errors.InvalidSignatureError, "invalid_signature"),
    (jwt_errors.InvalidAlgorithmError, "disallowed_algorithm"),
    (jwt_errors.InvalidSubjectError, "invalid_sub"),
    (jwt_errors.InvalidKeyError, "invalid_key"),
)
DURATION_PATTERN = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)", re.ASCII)
SECONDS_PER_UNIT = MappingProxyType({"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400})


@dataclass(frozen=True)
class ClientClaims:
    subject: str
    expires_at: float
    topics: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)


@dataclass(frozen=True)
class TokenVerifierConfig:
    """Exactly one of hs256_secret / public_key_pem / jwks_url; None means unset."""

    hs256_secret: str | None = field(default=None, repr=False)
    public_key_pem: str | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ()
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 30

    def __post_init__(self) -> None:
        for name in (*KEY_SOURCES, "audience", "issuer"):
            if getattr(self, name) == "":
                raise ValueError(f"{name} is empty; use None to leave it unset")
        sources = [name for name in KEY_SOURCES if getattr(self, name) is not None]
        if len(sources) != 1:
            raise ValueError(f"exactly one of {', '.join(KEY_SOURCES)} must be set, got: {sources or 'none'}")
        family = HMAC_MIN_SECRET_BYTES if self.hs256_secret is not None else PUBLIC_KEY_ALGORITHMS
        unusable = [name for name in _configured_algorithms(self) if name not in family]
        if unusable:
            raise ValueError(f"algorithms {unusable} cannot be used with {sources[0]}")
        if self.hs256_secret is not None:
            require_strong_secret(self.hs256_secret, _configured_algorithms(self))
            require_hmac_secret(self.hs256_secret)
        if self.jwks_url is not None and not self.jwks_url.startswith("https://"):
            raise ValueError("jwks_url must be an https:// URL")
        if not 0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}")


class ClientTokenVerifier:
    def __init__(self, config: TokenVerifierConfig, http: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._algorithms = _configured_algorithms(config)
        self._jwks: JwksKeyCache | None = None
        self._hmac: HmacJwsVerifier | None = None
        self._static_key: Any = None
        self._decoder = jwt.PyJWT()
        if config.hs256_secret is not None:
            self._hmac = HmacJwsVerifier(config.hs256_secret, self._algorithms)
        elif config.public_key_pem is not None:
            self._static_key, self._algorithms = load_public_key(config.public_key_pem, self._algorithms)
        elif config.jwks_url is not None:
            self._jwks = JwksKeyCache(config.jwks_url, self._algorithms, http)

    async def verify(self, token: str) -> ClientClaims:
        _require_plausible_size(token)
        if self._hmac is not None:
            return _claims_from(self._verified_hmac_payload(self._hmac, token))
        if self._jwks is None:
            # jwt.decode refuses any alg outside self._algorithms itself, and
            # parses the header once instead of twice.
            return _claims_from(self._verified_payload(token, self._static_key))
        header = _unverified_header(token)
        if header.get("alg") not in self._algorithms:
            raise rejected("disallowed_algorithm")
        key = await self._jwks_key(self._jwks, header)
        return _claims_from(self._verified_payload(token, key))

    @staticmethod
    async def _jwks_key(jwks: JwksKeyCache, header: Mapping[str, Any]) -> Any:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("missing_kid", "token header names no key id")
        try:
            return await jwks.signing_key(kid, header.get("alg"))
        except UnknownKeyId:
            raise TokenRejected("unknown_key", "token is signed with an unknown key") from None
        # JwksUnavailable goes to the caller as it is: the token may be fine.

    def _verified_hmac_payload(self, verifier: HmacJwsVerifier, token: str) -> dict[str, Any]:
        config = self._config
        payload = verifier.verified_payload(token)
        check_registered_claims(
            payload, now=time.time(), leeway=config.leeway_seconds, audience=config.audience, issuer=config.issuer
        )
        return payload

    def _verified_payload(self, token: str, key: Any) -> dict[str, Any]:
        config = self._config
        options: Options = {
            "require": ["exp", "sub"],
            "verify_aud": config.audience is not None,
            "enforce_minimum_key_length": True,
        }
        try:
            return self._decoder.decode(
                token, key, algorithms=list(self._algorithms), options=options,
                audience=config.audience, issuer=config.issuer, leeway=config.leeway_seconds,
            )
        except jwt_errors.PyJWTError as error:
            raise _rejection_for(error) from None


def mint_client_token(
    secret: str, client_id: str, ttl_seconds: float, *, topics: Sequence[str] = (),
    audience: str | None = None, issuer: str | None = None, now: float | None = None, scope: str | None = None,
    algorithm: str = "HS256",
) -> str:
    """A development/test token signed with `secret` (HS256, HS384 or HS512); `scope`
    (e.g. "publish") for a backend's publish token."""
    if algorithm not in HASH_BY_ALGORITHM:
        raise ValueError(f"tokens are minted with HS256, HS384 or HS512, not {algorithm}")
    require_strong_secret(secret, (algorithm,))
    if not _is_valid_subject(client_id):
        raise ValueError(f"client_id must be a non-empty string of at most {MAX_SUBJECT_CHARS} characters")
    if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
        raise ValueError("ttl_seconds must be a positive number")
    if isinstance(topics, str) or not all(isinstance(topic, str) for topic in topics):
        raise ValueError("topics must be a sequence of strings")
    issued_at = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": client_id, "iat": int(issued_at), "exp": math.ceil(issued_at + ttl_seconds)}
    if topics:
        claims["topics"] = list(topics)
    if scope is not None:
        claims["scope"] = scope
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=algorithm)


def parse_duration(text: str) -> float:
    """'10m' -> 600, '30s', '2h', '1d', plain number = seconds; ValueError on junk."""
    match = DURATION_PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a duration (expected e.g. 30s, 10m, 2h, 1d): {text!r}")
    return float(match[1]) * SECONDS_PER_UNIT[match[2]]


def _configured_algorithms(config: TokenVerifierConfig) -> tuple[str, ...]:
    if config.algorithms:
        return tuple(config.algorithms)
    return ("HS256",) if config.hs256_secret is not None else ("RS256", "ES256")


def _require_plausible_size(token: str) -> None:
    if isinstance(token, str) and len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected("too_long", f"token exceeds {MAX_TOKEN_CHARS} bytes")
    if not isinstance(token, str) or not token.isascii():
        raise malformed()


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt_errors.PyJWTError:
        raise malformed() from None


def _rejection_for(error: Exception) -> TokenRejected:
    if isinstance(error, jwt_errors.MissingRequiredClaimError):
        return missing_claim(error.claim)
    for error_type, reason in REJECTIONS:
        if isinstance(error, error_type):
            return rejected(reason)
    return malformed()


def _claims_from(payload: dict[str, Any]) -> ClientClaims:
    subject = payload.get("sub")
    if isinstance(subject, str) and not subject.strip():
        raise TokenRejected("missing_sub", "token subject is empty")
    if not _is_valid_subject(subject):
        raise TokenRejected("invalid_sub", f"token subject must be a string of at most {MAX_SUBJECT_CHARS} characters")
    for name in ("exp", "nbf", "iat"):
        if name in payload and not _is_numeric_date(payload[name]):
            raise TokenRejected("malformed", f"token '{name}' claim is not a number")
    topics = payload.get("topics", [])
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        raise TokenRejected("malformed", "token 'topics' claim must be a list of strings")
    return ClientClaims(subject, float(payload["exp"]), tuple(topics), MappingProxyType(payload))


def _is_valid_subject(subject: Any) -> bool:
    return isinstance(subject, str) and bool(subject.strip()) and len(subject) <= MAX_SUBJECT_CHARS


def _is_numeric_date(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond a double's range
        return False

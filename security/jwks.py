"""Cached, rate-limited access to the signing keys published at a JWKS URL.

Keys are cached for CACHE_TTL_SECONDS. An unknown `kid` triggers a refresh, but
fetch attempts (successful or not) are at least MIN_REFRESH_INTERVAL_SECONDS
apart whatever `kid` values an attacker sends, and concurrent refreshes share
one fetch. If a refresh fails the last good keys keep serving for at most
MAX_STALE_SECONDS past their TTL. Only public RSA/EC signing keys are loaded.
While the last refresh failed, a `kid` the keys lack is "unavailable" (503),
not unknown (401): it may be a key added meanwhile.

A key's `alg` member is optional (RFC 7517 4.4; Azure AD's keys have none). An
RSA key without one is loaded for each configured RSA algorithm (RS*, PS*),
where PyJWT alone would assume RS256 and CLIENT_JWT_ALGORITHMS=RS512 would
refuse every token; an EC key's algorithm follows from its curve.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Collection, Mapping
from time import monotonic
from typing import Any

import httpx
from jwt import PyJWK

CACHE_TTL_SECONDS = 600.0
MIN_REFRESH_INTERVAL_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 5.0
# After a failed refresh the last good key set keeps serving, but not forever:
# an attacker who can block our JWKS fetches must not keep a revoked key alive.
MAX_STALE_SECONDS = 3600.0
MAX_DOCUMENT_BYTES = 256 * 1024
ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC"})
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")

logger = logging.getLogger(__name__)


class JwksError(Exception):
    """Base class; messages never contain token material."""


class JwksUnavailable(JwksError):
    """No usable key set: the JWKS could not be fetched or parsed. Not the token's
    fault: answered 503 with Retry-After (`retry_after_seconds`, until the next fetch
    may be tried), so clients back off and keep their token."""

    def __init__(self, message: str, retry_after_seconds: float = MIN_REFRESH_INTERVAL_SECONDS) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    @property
    def retry_after_header(self) -> dict[str, str]:
        return {"Retry-After": str(math.ceil(self.retry_after_seconds))}


class UnknownKeyId(JwksError):
    """The key set is loaded but has no usable key with the requested kid."""


class JwksKeyCache:
    def __init__(
        self, url: str, allowed_algorithms: Collection[str], http: httpx.AsyncClient | None = None
    ) -> None:
        self._url = url
        self._allowed_algorithms = frozenset(allowed_algorithms)
        self._http = http
        self._keys: dict[str, dict[str, PyJWK]] = {}  # kid -> algorithm -> key
        self._fetched_at: float | None = None
        self._last_attempt_at: float | None = None
        self._refresh_lock = asyncio.Lock()

    async def signing_key(self, kid: str, algorithm: str | None = None) -> PyJWK:
        """Return the key for `kid` (for `algorithm`, when the key serves several);
        raises UnknownKeyId or JwksUnavailable."""
        if not self._is_fresh() or kid not in self._keys:
            await self._refresh_if_allowed()
        if not self._is_usable():
            wait = MIN_REFRESH_INTERVAL_SECONDS - _seconds_since(self._last_attempt_at)
            raise JwksUnavailable("the signing keys (JWKS) cannot be fetched right now", max(1.0, wait))
        by_algorithm = self._keys.get(kid)
        if by_algorithm is None:
            if self._last_refresh_failed():
                # The key may be new, added while the JWKS cannot be fetched: not the
                # token's fault (a 401 made widgets throw good tokens away, and ask the
                # site's token endpoint again and again, for as long as the outage lasted).
                wait = MIN_REFRESH_INTERVAL_SECONDS - _seconds_since(self._last_attempt_at)
                raise JwksUnavailable("the signing keys (JWKS) cannot be fetched right now; the token's key may be new", max(1.0, wait))
            raise UnknownKeyId("no signing key with this kid in the JWKS")
        # Another algorithm than the key's: its own key, which the verifier then refuses.
        return by_algorithm.get(algorithm or "") or next(iter(by_algorithm.values()))

    def _is_fresh(self) -> bool:
        return _seconds_since(self._fetched_at) < CACHE_TTL_SECONDS

    def _is_usable(self) -> bool:
        return _seconds_since(self._fetched_at) < CACHE_TTL_SECONDS + MAX_STALE_SECONDS

    def _last_refresh_failed(self) -> bool:
        return self._last_attempt_at is not None and (self._fetched_at is None or self._last_attempt_at > self._fetched_at)

    def _refresh_allowed(self) -> bool:
        return _seconds_since(self._last_attempt_at) >= MIN_REFRESH_INTERVAL_SECONDS

    async def _refresh_if_allowed(self) -> None:
        if not self._refresh_allowed():
            return
        async with self._refresh_lock:
            # Whoever held the lock before us may just have refreshed.
            if not self._refresh_allowed():
                return
            # The attempt is stamped only once it finishes, so a waiter whose
            # request got cancelled mid-fetch doesn't block the next attempt.
            try:
                keys = await self._fetch_keys()
            except Exception as error:  # whatever the document held: the next try waits its turn
                self._last_attempt_at = monotonic()
                logger.warning("JWKS refresh from %s failed: %s", self._url, _described(error))
                return
            if not keys:
                # Every token is then refused as signed with an unknown key: say why once per fetch.
                logger.warning(
                    "JWKS from %s holds no key usable here (public RSA/EC signing keys for %s)",
                    self._url, ", ".join(sorted(self._allowed_algorithms)),
                )
            self._keys = keys
            self._fetched_at = self._last_attempt_at = monotonic()

    async def _fetch_keys(self) -> dict[str, dict[str, PyJWK]]:
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
                body = await self._download()
        except JwksUnavailable:
            raise
        except Exception as error:  # any fetch failure must end as "unavailable", never escape
            raise JwksUnavailable(f"fetch failed ({type(error).__name__})") from None
        return parse_key_set(body, self._allowed_algorithms)

    async def _download(self) -> bytes:
        if self._http is not None:
            return await _read_capped(self._http, self._url)
        async with httpx.AsyncClient() as http:
            return await _read_capped(http, self._url)


def _described(error: Exception) -> str:
    return str(error) if isinstance(error, JwksError) else f"unreadable key set ({type(error).__name__})"


def _seconds_since(moment: float | None) -> float:
    return math.inf if moment is None else monotonic() - moment


async def _read_capped(http: httpx.AsyncClient, url: str) -> bytes:
    async with http.stream(
        "GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False
    ) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise JwksUnavailable("JWKS document is too large")
        return bytes(body)


def parse_key_set(body: bytes, allowed_algorithms: Collection[str]) -> dict[str, dict[str, PyJWK]]:
    """Usable signing keys by kid and algorithm; entries we can't or mustn't use are skipped."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise JwksUnavailable("JWKS document is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable("JWKS document has no 'keys' list")
    keys: dict[str, dict[str, PyJWK]] = {}
    for entry in entries:
        if not _is_public_signing_entry(entry) or entry["kid"] in keys:
            continue
        candidates = [None] if "alg" in entry or entry["kty"] != "RSA" else [alg for alg in RSA_ALGORITHMS if alg in allowed_algorithms]
        usable = {}
        for algorithm in candidates:
            key = _usable_key(entry, algorithm, allowed_algorithms)
            if key is not None:
                usable[key.algorithm_name] = key
        if usable:
            keys[entry["kid"]] = usable
    return keys


def _usable_key(entry: Mapping[str, Any], algorithm: str | None, allowed_algorithms: Collection[str]) -> PyJWK | None:
    try:
        key = PyJWK(dict(entry), algorithm)
    except Exception:  # PyJWTError, or a TypeError/ValueError from a member of the wrong type
        return None
    if key.algorithm_name not in allowed_algorithms:
        return None
    if key.Algorithm.check_key_length(key.key) is not None:
        return None
    return key


def _is_public_signing_entry(entry: Any) -> bool:
    # A symmetric ("oct") or private key has no business in a public key set.
    return (
        isinstance(entry, Mapping)
        and isinstance(entry.get("kid"), str)
        and isinstance(entry.get("kty"), str)
        and entry["kty"] in ASYMMETRIC_KEY_TYPES
        and entry.get("use", "sig") == "sig"
        and "d" not in entry
    )

"""The registered claims of a verified HMAC token, checked as PyJWT checks them for ClientTokenVerifier.

Same order and rules as PyJWT 2.x with our options (`exp` and `sub` required,
`aud` checked only when an audience is configured, `iss` only when an issuer
is): required claims (present and not null), then `iat` and `nbf` not in the
future, `exp` not past (all three compared as whole seconds, with leeway),
`iss`, `aud` (a string, or a list of strings that holds ours), `sub` a string
and `jti` a string when present. Public-key tokens get these checks from
PyJWT itself.
"""

from __future__ import annotations

from typing import Any

from security.token_rejection import malformed, missing_claim, rejected

REQUIRED_CLAIMS = ("exp", "sub")


def check_registered_claims(
    payload: dict[str, Any], *, now: float, leeway: float, audience: str | None, issuer: str | None
) -> None:
    for name in REQUIRED_CLAIMS:
        if payload.get(name) is None:
            raise missing_claim(name)
    for name in ("iat", "nbf"):
        if name in payload and _whole_seconds(payload[name]) > now + leeway:
            raise rejected("not_yet_valid")
    if _whole_seconds(payload["exp"]) <= now - leeway:
        raise rejected("expired")
    if issuer is not None:
        _check_issuer(payload, issuer)
    if audience is not None:
        _check_audience(payload, audience)
    if not isinstance(payload["sub"], str):
        raise rejected("invalid_sub")
    if "jti" in payload and not isinstance(payload["jti"], str):
        raise malformed()


def _whole_seconds(value: Any) -> int:
    # int() as PyJWT does: "1700000000" passes here; ClientTokenVerifier refuses non-numbers afterwards.
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        pass
    raise malformed()


def _check_issuer(payload: dict[str, Any], issuer: str) -> None:
    if "iss" not in payload:
        raise missing_claim("iss")
    if payload["iss"] != issuer or not isinstance(payload["iss"], str):
        raise rejected("bad_issuer")


def _check_audience(payload: dict[str, Any], audience: str) -> None:
    claimed = payload.get("aud")
    if not claimed:
        raise missing_claim("aud")
    if isinstance(claimed, str):
        claimed = [claimed]
    if not isinstance(claimed, list) or not all(isinstance(name, str) for name in claimed) or audience not in claimed:
        raise rejected("bad_audience")


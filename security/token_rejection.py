"""The one error every client-token check raises, and the reasons shared by both verify paths.

PyJWT's errors (public-key tokens, security/tokens.py) and our own HMAC checks
(security/hmac_jws.py, security/token_claims.py) name the same problems; they
answer with the same reason and message from here.
"""

from __future__ import annotations

from types import MappingProxyType


class TokenRejected(Exception):
    """reason: short machine-friendly code; message: for humans. Never holds the token."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


MESSAGES = MappingProxyType({
    "malformed": "token is not a well-formed JWT",
    "expired": "token has expired",
    "not_yet_valid": "token is not valid yet",
    "bad_audience": "token audience is not accepted",
    "bad_issuer": "token issuer is not accepted",
    "invalid_signature": "token signature does not verify",
    "disallowed_algorithm": "token algorithm is not accepted",
    "invalid_sub": "token subject must be a string",
    "invalid_key": "verification key cannot be used",
})
MISSING_CLAIM_REASONS = MappingProxyType(
    {"exp": "missing_exp", "sub": "missing_sub", "aud": "bad_audience", "iss": "bad_issuer"}
)


def rejected(reason: str) -> TokenRejected:
    return TokenRejected(reason, MESSAGES[reason])


def malformed() -> TokenRejected:
    return rejected("malformed")


def missing_claim(claim: str) -> TokenRejected:
    return TokenRejected(MISSING_CLAIM_REASONS.get(claim, "malformed"), f"token lacks a required '{claim}' claim")

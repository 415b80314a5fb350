"""The one error every client-token check raises."""

from __future__ import annotations


class TokenRejected(Exception):
    """reason: short machine-friendly code; message: for humans. Never holds the token."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def malformed() -> TokenRejected:
    return TokenRejected("malformed", "token is not a well-formed JWT")

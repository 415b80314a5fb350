"""Function-level failures: answered with HTTP 200 and an `error` object."""

from __future__ import annotations

from typing import Any


class FunctionError(Exception):
    def __init__(self, error_type: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.data = data

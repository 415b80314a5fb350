"""Channel's access tokens as the token manager keeps them, read from its answers.

`parse_token_answer` reads what issueToken/refreshToken answered into a
`CachedToken`, refusing an answer the manager could not use (no token, one
that cannot travel in a header, no positive lifetime): cached, it would fail
every call until it expired.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from channel_app.native.client import NativeApiError

_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


@dataclass
class CachedToken:
    access: str
    refresh: str | None
    renew_at: float  # clock time after which we renew
    expires_at: float  # clock time after which Channel rejects it
    retry_at: float = float("-inf")  # after a failed renewal: serve as is until then
    failed_renewals: int = 0  # in a row, that reached Channel: each doubles the wait for the next
    issued_at: float = float("-inf")  # when Channel gave it to this manager (not taken from the share)

    def usable(self, now: float) -> bool:
        return now < self.renew_at or (now < self.retry_at and now < self.expires_at)


def parse_token_answer(answer: dict[str, Any], method: str, old_refresh: str | None, now: float, margin: float) -> CachedToken:
    """The token in Channel's answer to issueToken/refreshToken (`now` on the manager's
    clock, renewed `margin` seconds before it expires); NativeApiError protocol if the
    answer does not hold a usable one."""
    access = answer.get("accessToken")
    refresh = answer.get("refreshToken") or old_refresh
    expires_in = answer.get("expiresIn")
    if not isinstance(access, str) or not access:
        raise NativeApiError("protocol", f"{method}: answer has no accessToken")
    if not _HEADER_SAFE.fullmatch(access):
        # It travels in the x-access-token header: cached, it would fail every call until it expired.
        raise NativeApiError("protocol", f"{method}: accessToken is not visible ASCII")
    if refresh is not None and not isinstance(refresh, str):
        raise NativeApiError("protocol", f"{method}: refreshToken is not a string")
    try:
        lifetime = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lifetime = 0.0
    if isinstance(expires_in, bool) or not 0 < lifetime < math.inf:
        raise NativeApiError("protocol", f"{method}: expiresIn is not a positive number")
    # A short-lived token is renewed at half its life rather than never used.
    margin = min(margin, lifetime / 2)
    return CachedToken(access, refresh, renew_at=now + lifetime - margin, expires_at=now + lifetime, issued_at=now)

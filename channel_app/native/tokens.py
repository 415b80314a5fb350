"""Access tokens for native functions: cached, renewed early, single-flight, budgeted.

Channel allows 10 ``issueToken`` + ``refreshToken`` calls per 30 minutes, so
tokens are cached per channel (``None`` is the app token) and renewed about
``refresh_margin_seconds`` before they expire. Renewal tries ``refreshToken``
first and falls back to ``issueToken`` when Channel refuses the refresh token
(not when it fails: that would spend a second unit on the same outage). Concurrent callers for one channel
share a single renewal, its success or its failure. Every issue or refresh
call spends one unit of an app-wide sliding-window budget; when the budget is
spent, :class:`NativeApiError` ``rate_limited`` is raised without calling
Channel. A call that never reached Channel (no connection) gives its unit
back: an outage of a few minutes used to spend the whole budget and lock the
fallback out for 30 minutes once Channel was back. If renewal fails while the
cached token has not expired yet, the cached token is served and renewal is
retried after a cooldown that doubles with each failure in a row; with no token to serve, the failure is
answered again for ``failure_cooldown_seconds`` without asking Channel, so a
burst of fallbacks during an outage spends one unit, not one each.

With a ``TokenShare`` (REDIS_URL: channel_app/native/token_share.py) the
instances share tokens, renewals, failures and the budget: before renewing,
an instance takes a token another one stored; one instance renews a channel
at a time, holding it for as long as a renewal can take (two token calls),
and the others wait for its token, or its failure, which they answer with at
once; every issue or refresh also spends the shared budget. While Redis does
not answer, each instance goes on with its own cache and budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, get_args

import anyio

from channel_app.native.client import ErrorKind, NativeApiClient, NativeApiError
from channel_app.native.token_records import CachedToken, parse_token_answer
from channel_app.native.token_share import FAILED_PREFIX, SharedToken, TokenShare
from sse.broker import BrokerUnavailable

logger = logging.getLogger(__name__)

RENEWAL_POLL_SECONDS = 0.1
RENEWAL_PATIENCE_SECONDS = 0.5  # how long a caller with a still-valid token waits for its renewal
FAILURE_COOLDOWN_LIMIT = 600.0
FRESH_TOKEN_SECONDS = 60.0  # a token refused this soon after Channel issued it is not renewed again
ERROR_KINDS = frozenset(get_args(ErrorKind))
# A refresh failing for these is Channel down or limiting, not the refresh token refused:
# an issue would only spend a second unit on the same outage. Any other failure (401, 400,
# an error object in a 200, a malformed answer) is followed by an issue.
REFRESH_NOT_REFUSED = frozenset({"unavailable", "rate_limited"})
REJECTED_REMEMBERED = 16
T = TypeVar("T")


@dataclass(frozen=True)
class _Spend:
    at: float  # on this manager's clock
    receipt: str | None  # the shared budget's, with a TokenShare that answered


class _Failure(NamedTuple):
    until: float  # on the manager's clock
    error: NativeApiError
    streak: int  # failures in a row that reached Channel


class BudgetSpent(NativeApiError):
    """This side's count of the token budget is spent: nothing was asked of Channel."""


class SharedFailure(NativeApiError):
    """Another instance's renewal failed a moment ago (its cooldown is in Redis)."""


def _retrieve_outcome(flight: asyncio.Future) -> None:
    """Mark a renewal's failure as seen: no caller may be waiting for it any more."""
    if not flight.cancelled():
        flight.exception()


class TokenManager:
    def __init__(
        self,
        client: NativeApiClient,
        app_secret: str,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_seconds: float = 300,
        budget: int = 10,
        budget_window_seconds: float = 1800,
        *,
        retry_cooldown_seconds: float = 30,
        failure_cooldown_seconds: float = 10,
        shared: TokenShare | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not app_secret:
            raise ValueError("app_secret is required")
        if budget < 1 or budget_window_seconds <= 0:
            raise ValueError("budget and budget_window_seconds must be positive")
        if refresh_margin_seconds < 0 or retry_cooldown_seconds < 0 or failure_cooldown_seconds < 0:
            raise ValueError("margins must not be negative")
        self._client = client
        self._secret = app_secret
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._budget = budget
        self._window = budget_window_seconds
        self._cooldown = retry_cooldown_seconds
        self._failure_cooldown = failure_cooldown_seconds
        self._failures: dict[str | None, _Failure] = {}
        self._tokens: dict[str | None, CachedToken] = {}
        self._flights: dict[str | None, asyncio.Future[CachedToken]] = {}
        self._spent: deque[float] = deque()
        self._shared = shared
        self._wall_clock = wall_clock
        self._shared_failing = False
        # Access tokens Channel refused (`invalidate`): never taken from the share again.
        self._rejected: deque[str] = deque(maxlen=REJECTED_REMEMBERED)

    def __repr__(self) -> str:  # never show the secret or tokens
        return f"TokenManager(channels={len(self._tokens)}, budget={self._budget}/{self._window}s)"

    async def access_token(self, channel_id: str | None = None) -> str:
        """A valid access token for ``channel_id`` (``None``: the app token)."""
        now = self._clock()
        cached = self._tokens.get(channel_id)
        if cached is not None and cached.usable(now):
            return cached.access
        failed = self._failures.get(channel_id)
        if failed is not None and now < failed.until:
            error = failed.error
            raise NativeApiError(error.kind, f"{error.message} (a moment ago; not asked again yet)", error.status)
        flight = self._flights.get(channel_id)
        if flight is None:
            flight = self._flights[channel_id] = asyncio.ensure_future(self._fly(channel_id, cached))
            flight.add_done_callback(_retrieve_outcome)
        try:
            if cached is not None and now < cached.expires_at:
                # A token that still works is not held up by a slow renewal: after a
                # moment the caller goes on with it, and the renewal goes on without it.
                try:
                    return (await asyncio.wait_for(asyncio.shield(flight), RENEWAL_PATIENCE_SECONDS)).access
                except TimeoutError:
                    return cached.access
            # Shielded: a caller's deadline (the chat fallback's) ends its wait, not the
            # renewal, whose outcome is then recorded for the next caller.
            return (await asyncio.shield(flight)).access
        except NativeApiError as error:
            raise NativeApiError(error.kind, error.message, error.status) from None

    async def close(self) -> None:
        """Stop the renewals still under way (they outlive the calls that started them)."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)

    def record_failure(self, channel_id: str | None, error: NativeApiError) -> None:
        """Answer `error` for ``channel_id`` without asking Channel, for a cooldown that
        doubles with each failure in a row (FAILURE_COOLDOWN_LIMIT at most) while the
        calls reach Channel: a lasting failure spends few of the app's 10 token calls
        per 30 minutes. Unreached calls (refunded) keep the first cooldown."""
        cooldown, streak = self._cooldown_after(channel_id, error)
        self._failures[channel_id] = _Failure(self._clock() + cooldown, error, streak)

    def record_success(self, channel_id: str | None) -> None:
        """A call with the channel's token went through: its failures are over."""
        self._failures.pop(channel_id, None)

    def issued_just_now(self, channel_id: str | None, access_token: str) -> bool:
        """Whether `access_token` is the channel's token and Channel issued it moments ago."""
        cached = self._tokens.get(channel_id)
        return cached is not None and cached.access == access_token and self._clock() - cached.issued_at < FRESH_TOKEN_SECONDS

    def _cooldown_after(self, channel_id: str | None, error: NativeApiError) -> tuple[float, int]:
        previous = self._failures.get(channel_id)
        # A renewal that works does not end a streak: posts refused with fresh tokens
        # are one lasting failure. A call that goes through does (record_success).
        in_a_row = previous is not None and error.reached and self._clock() - previous.until < FAILURE_COOLDOWN_LIMIT
        streak = previous.streak + 1 if in_a_row else 1
        return min(self._failure_cooldown * 2 ** (streak - 1), FAILURE_COOLDOWN_LIMIT), streak

    async def _fly(self, channel_id: str | None, cached: CachedToken | None) -> CachedToken:
        try:
            token = await self._renew(channel_id, cached)
        except NativeApiError as exc:
            if not isinstance(exc, (BudgetSpent, SharedFailure)):  # this side's own count / another's cooldown
                self.record_failure(channel_id, exc)
            raise
        finally:
            del self._flights[channel_id]
        return token

    def invalidate(self, channel_id: str | None = None, access_token: str | None = None) -> None:
        """Forget the cached token, e.g. after Channel answered 401 to it.

        With ``access_token``, forget it only if it is still the cached one, so
        a late 401 does not throw away a token renewed in the meantime.
        """
        cached = self._tokens.get(channel_id)
        if access_token is not None:
            self._rejected.append(access_token)
        if cached is not None and (access_token is None or cached.access == access_token):
            self._rejected.append(cached.access)
            del self._tokens[channel_id]

    def remaining_budget(self) -> int:
        self._expire_spent(self._clock())
        return self._budget - len(self._spent)

    async def _renew(self, channel_id: str | None, cached: CachedToken | None) -> CachedToken:
        try:
            if self._shared is None:
                token = await self._fetch(channel_id, cached)
            else:
                token = await self._fetch_shared(self._shared, channel_id, cached)
        except NativeApiError as exc:
            now = self._clock()
            if cached is None or now >= cached.expires_at:
                raise
            # Doubling, as record_failure's cooldown: a fixed 30 s spent the whole budget
            # (10 calls per 30 minutes) within minutes of a token-endpoint outage that
            # began before the token expired, and the fallback stayed off for the rest
            # of the window once Channel was back (review reproduction).
            if exc.reached:
                cached.failed_renewals += 1
            wait = min(self._cooldown * 2 ** max(0, cached.failed_renewals - 1), FAILURE_COOLDOWN_LIMIT)
            logger.warning(
                "token renewal for %s failed (%s); serving the cached token, next renewal in %gs",
                _scope(channel_id), exc.kind, wait,
            )
            cached.retry_at = now + wait
            return cached
        self._tokens[channel_id] = token
        return token

    async def _fetch_shared(self, shared: TokenShare, channel_id: str | None, cached: CachedToken | None) -> CachedToken:
        """Another instance's token if it has a fresh one; else renew here, one instance at a time."""
        if (taken := await self._take_shared(shared, channel_id)) is not None:
            return taken
        holding = self._renewal_seconds()
        holder = await self._shared_or(shared.begin_renewal(channel_id, holding), "")  # "": renew without a hold
        if holder is None and (taken := await self._await_other_renewal(shared, channel_id, holding)) is not None:
            return taken
        failure, cooldown = None, 0.0
        try:
            latest = await self._shared_or(shared.current(channel_id), None)
            if latest is not None and latest.access not in self._rejected:
                cached = self._local(latest)  # its refresh token is the current one
            token = await self._fetch(channel_id, cached)
            now, wall = self._clock(), self._wall_clock()
            stored = SharedToken(token.access, token.refresh, wall + token.renew_at - now, wall + token.expires_at - now)
            await self._shared_or(shared.store(channel_id, stored), None)
            return token
        except NativeApiError as exc:
            if not isinstance(exc, BudgetSpent):  # left for the others as long as this side's own cooldown
                failure, cooldown = exc.kind, self._cooldown_after(channel_id, exc)[0]
            raise
        finally:
            if holder:
                await self._shared_or(shared.end_renewal(channel_id, holder, failure, cooldown), None)

    def _renewal_seconds(self) -> float:
        """The longest a renewal holds a channel: a refresh, then an issue, each within the timeout."""
        return 2 * self._client.timeout_seconds + 1

    async def _await_other_renewal(self, shared: TokenShare, channel_id: str | None, holding: float) -> CachedToken | None:
        """The token another instance is renewing, once it stores it; its failure, raised; None
        when its hold ends without either (it went away): then this instance renews."""
        for attempt in range(math.ceil(holding / RENEWAL_POLL_SECONDS)):
            if attempt:
                await anyio.sleep(RENEWAL_POLL_SECONDS)
                if (taken := await self._take_shared(shared, channel_id)) is not None:
                    return taken
            state = await self._shared_or(shared.renewal_state(channel_id), None)
            if state is None:
                return None
            if state.startswith(FAILED_PREFIX):
                kind = state[len(FAILED_PREFIX):]
                message = f"token renewal for {_scope(channel_id)} failed on another instance a moment ago"
                raise SharedFailure(kind if kind in ERROR_KINDS else "unavailable", message)  # type: ignore[arg-type]
        logger.warning("native API: no other instance renewed %s within %gs; renewing here", _scope(channel_id), holding)
        return None

    async def _take_shared(self, shared: TokenShare, channel_id: str | None) -> CachedToken | None:
        latest = await self._shared_or(shared.current(channel_id), None)
        if latest is None or latest.access in self._rejected or self._wall_clock() >= latest.renew_at:
            return None
        return self._local(latest)

    def _local(self, shared: SharedToken) -> CachedToken:
        """`shared` with its wall-clock times moved onto this manager's clock."""
        offset = self._clock() - self._wall_clock()
        return CachedToken(shared.access, shared.refresh, renew_at=shared.renew_at + offset, expires_at=shared.expires_at + offset)

    async def _shared_or(self, call: Awaitable[T], fallback: T) -> T:
        try:
            answer = await call
        except BrokerUnavailable:
            if not self._shared_failing:
                logger.warning("native API: Redis unreachable; this instance renews and counts on its own for now")
            self._shared_failing = True
            return fallback
        self._shared_failing = False
        return answer

    async def _fetch(self, channel_id: str | None, cached: CachedToken | None) -> CachedToken:
        if cached is not None and cached.refresh:
            try:
                answer = await self._spent_on(lambda: self._client.call("refreshToken", {"refreshToken": cached.refresh}, max_retries=0))
                return parse_token_answer(answer, "refreshToken", cached.refresh, self._clock(), self._margin)
            except NativeApiError as exc:
                if exc.kind in REFRESH_NOT_REFUSED:
                    raise
                logger.warning(
                    "refreshToken for %s refused (%s); issuing a new token", _scope(channel_id), exc.kind
                )
        params: dict[str, Any] = {"secret": self._secret}
        if channel_id is not None:
            params["channelId"] = channel_id
        answer = await self._spent_on(lambda: self._client.call("issueToken", params, max_retries=0))
        return parse_token_answer(answer, "issueToken", None, self._clock(), self._margin)

    async def _spent_on(self, call: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """`call()`'s answer, for one unit of the budget, given back if it never reached Channel."""
        spend = await self._spend()
        try:
            return await call()
        except NativeApiError as exc:
            if not exc.reached:
                await self._refund(spend)
            raise

    async def _spend(self) -> _Spend:
        now = self._clock()
        self._expire_spent(now)
        within = len(self._spent) < self._budget
        receipt = None
        if within and self._shared is not None:
            receipt = await self._shared_or(self._shared.spend(self._budget, self._window), "")
            within = receipt is not None
        if not within:
            raise BudgetSpent(
                "rate_limited",
                f"token budget spent: {self._budget} issue/refresh calls per {self._window:g}s",
            )
        self._spent.append(now)
        return _Spend(now, receipt or None)

    async def _refund(self, spend: _Spend) -> None:
        with contextlib.suppress(ValueError):  # already out of the window
            self._spent.remove(spend.at)
        if spend.receipt is not None and self._shared is not None:
            await self._shared_or(self._shared.refund(spend.receipt), None)

    def _expire_spent(self, now: float) -> None:
        while self._spent and self._spent[0] <= now - self._window:
            self._spent.popleft()


def _scope(channel_id: str | None) -> str:
    return "the app" if channel_id is None else f"channel {channel_id}"

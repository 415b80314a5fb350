"""Function-level failures (answered with HTTP 200 and an `error` object), and the
wording shared by the function and publish endpoints for an unconfirmed publish."""

from __future__ import annotations

from typing import Any

from sse.broker import BrokerRefusedWrite

# A Redis call that timed out may still run once Redis catches up (the command was
# sent), so this answer must not promise that nothing happened.
BROKER_UNCONFIRMED = (
    "the shared broker (Redis) did not confirm in time; the event may still be delivered "
    "if Redis was only slow, so retry only where a repeat is harmless"
)


BROKER_UNREACHABLE = "the shared broker (Redis) did not answer in time; retry shortly"
# Redis answered and refused (out of memory): definite, unlike a timeout.
BROKER_REFUSED = "the shared broker (Redis) refused the write (it is out of memory); nothing was sent"


BROKER_REFUSED_REST = (
    "the shared broker (Redis) refused a write (it is out of memory): the events in eventIds "
    "were sent, the rest were not"
)


def broker_failure(failure: Exception, publishes: bool = True, part_sent: bool = False) -> str:
    """What an UNAVAILABLE answer says about a failed broker call (`part_sent`: after
    some events of a sequence went out)."""
    if isinstance(failure, BrokerRefusedWrite):
        return BROKER_REFUSED_REST if part_sent else BROKER_REFUSED
    return BROKER_UNCONFIRMED if publishes else BROKER_UNREACHABLE
CUT_MID_PUBLISH = (
    "this instance shut down while publishing: the events listed went out, and the one "
    "after them may have too; with an id, a retry is answered with what did (or refused "
    "IN_PROGRESS for up to 30 s, if this instance could not let go of the id)"
)
CUT_BEFORE_READ = "this instance shut down before the call was read; nothing was sent, so retry"
CUT_BY_SHUTDOWN = (
    "this instance shut down before the call finished; an event it sent may have been "
    "delivered, so retry only where a repeat is harmless"
)


class FunctionError(Exception):
    def __init__(self, error_type: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.data = data

"""The topics a stream asks for (`?topics=promo,orders`), and whether its token allows them.

Shared by `/sse/connect` and `/sse/check`, so both answer the same: 400
`INVALID_TOPIC` for a malformed name, 400 `TOO_MANY_TOPICS` above
MAX_TOPICS_PER_CONNECTION, 403 `TOPIC_NOT_ALLOWED` for a topic the token's
`topics` claim does not cover (security/topic_access.py). Repeated names count once.
"""

from __future__ import annotations

from starlette.requests import Request

from channel_app.client_auth import ClientAuthFailed
from channel_app.responses import error_response
from security.tokens import ClientClaims
from security.topic_access import TopicAccess
from sse.names import InvalidName, check_topic

MAX_TOPICS_PARAMETER_CHARS = 8192


def requested_topics(request: Request, limit: int) -> tuple[str, ...]:
    """Valid, distinct topic names in request order; ClientAuthFailed (400) otherwise."""
    text = ",".join(request.query_params.getlist("topics"))
    if len(text) > MAX_TOPICS_PARAMETER_CHARS:
        raise ClientAuthFailed("too_many_topics", error_response(400, "TOO_MANY_TOPICS", f"at most {limit} topics per stream"))
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    try:
        topics = tuple(check_topic(name) for name in names)
    except InvalidName as invalid:
        raise ClientAuthFailed("invalid_topic", error_response(400, "INVALID_TOPIC", str(invalid))) from None
    if len(topics) > limit:
        raise ClientAuthFailed("too_many_topics", error_response(400, "TOO_MANY_TOPICS", f"at most {limit} topics per stream"))
    return topics


def authorize_topics(claims: ClientClaims, topics: tuple[str, ...]) -> None:
    refused = TopicAccess.from_claim(claims.topics).refused(topics)
    if refused:
        message = f"the token does not allow topic {refused[0]!r}" + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else "")
        raise ClientAuthFailed("topic_not_allowed", error_response(403, "TOPIC_NOT_ALLOWED", message))

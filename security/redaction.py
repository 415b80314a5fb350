"""Keep credentials out of logs.

EventSource cannot send headers, so browsers put their token in the query
string, and servers write query strings to access logs. Every access-log line
goes through `RedactCredentials` first.
"""

from __future__ import annotations

import logging
import re

CREDENTIAL_PARAMS = re.compile(
    r"(?i)((?:^|[?&;])(?:token|access_token|id_token|jwt|signature|secret|api_key|key)=)[^&;#\s\"]*"
)


def redact_query(text: str) -> str:
    return CREDENTIAL_PARAMS.sub(r"\1[redacted]", text)


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True

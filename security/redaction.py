"""Keep credentials out of logs.

EventSource cannot send headers, so browsers put their token in the query
string, and servers write query strings to access logs. Every access-log line
goes through `RedactCredentials` first.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

CREDENTIAL_NAMES = frozenset({"token", "access_token", "id_token", "jwt", "signature", "secret", "api_key", "key"})
QUERY_PARAM = re.compile(r"((?:^|[?&;])([^=&;#?\s\"]+)=)[^&;#\s\"]*")


def redact_query(text: str) -> str:
    return QUERY_PARAM.sub(_redacted_if_credential, text)


def _redacted_if_credential(param: re.Match[str]) -> str:
    # Names are compared decoded: the server reads `%74oken` as `token`.
    if unquote_plus(param.group(2)).lower() in CREDENTIAL_NAMES:
        return param.group(1) + "[redacted]"
    return param.group(0)


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True

"""Log lines: JSON for machines (production default), text for people (development).

Records carry their structured part as `extra={"fields": {...}}`; both
formatters print it (JSON as keys, text as `key=value`). `logging_config()`
returns the dictConfig that uvicorn applies, so uvicorn's own lines (startup,
access) come out in the same format.

Access lines never carry a query string: `WithoutQuery` cuts it off, and
security.redaction's `RedactCredentials` stays on the access logger as a
second guard. Callers log ids and outcomes, never tokens, signatures or
secrets.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from config.settings import Settings
from sse.timestamps import utc_iso

LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR"}
TEXT_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `instance` (INSTANCE_ID) tells instances apart where
    their logs are gathered together."""

    def __init__(self, instance: str | None = None) -> None:
        super().__init__()
        self._instance = instance

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._instance is not None:
            line["instance"] = self._instance
        line.update(record_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = record_fields(record)
        if not fields or getattr(record, "fields_in_message", False):
            return text
        return text + " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())


def _text_value(value: Any) -> str:
    text = str(value)
    if text and all(char in TEXT_SAFE for char in text):
        return text
    # Quoted and escaped: caller-supplied text cannot forge a second line or field.
    return orjson.dumps(text).decode()


class WithoutQuery(logging.Filter):
    """uvicorn.access records: (client, method, path?query, http version, status).
    Keep the path, drop the query, and expose the parts as fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, full_path, http_version, status = args
            path = str(full_path).split("?", 1)[0]
            record.args = (client, method, path, http_version, status)
            record.fields = {"client": client, "method": method, "path": path, "status": status}
            record.fields_in_message = True  # the text format shows the message alone
        return True


OWN_LOGGERS = ("channel_push", "channel_app", "security", "sse", "config")


def logging_config(settings: Settings) -> dict[str, Any]:
    """dictConfig for uvicorn's `log_config`: one stdout handler for everything."""
    level = LEVELS[settings.log_level]
    formatter = "json" if settings.effective_log_format == "json" else "text"
    handler = {"class": "logging.StreamHandler", "formatter": formatter, "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "channel_app.logs.JsonFormatter", "instance": settings.instance_id},
            "text": {"()": "channel_app.logs.TextFormatter"},
        },
        "filters": {
            "redact": {"()": "security.redaction.RedactCredentials"},
            "without_query": {"()": "channel_app.logs.WithoutQuery"},
        },
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {
                "handlers": ["default"],
                "level": level,
                "propagate": False,
                "filters": ["redact", "without_query"],
            },
            # Our own loggers: "channel_push.*" by name, and those named after their module.
            **{name: {"handlers": ["default"], "level": level, "propagate": False} for name in OWN_LOGGERS},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }

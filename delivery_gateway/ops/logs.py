"""Logging of a gateway process: text for humans or one JSON object per line, and uvicorn's chatter quieted.

`configure_logging` installs one handler on stderr for every logger (the gateway's and uvicorn's). A record's
`fields` (passed as `extra={"fields": {...}}`, as the request log does) become JSON keys, or `key=value` pairs
in text. Never adds information to a record: what a formatter writes is what the code logged, so the rule that
no secret is logged stays with the code that logs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from delivery_gateway.http.request_log import REQUEST_LOGGER

LOG_FORMATS = ("text", "json")
_HANDLER_NAME = "delivery-gateway"

# uvicorn's INFO lines per WebSocket ('127.0.0.1:5000 - "WebSocket /graphql" [accepted]', and the websockets
# library's "connection open" / "connection closed", both on uvicorn.error): the request log has one line per
# socket already. Warnings and errors on that logger are kept.
_WEBSOCKET_CHATTER_PREFIX = '%s - "WebSocket %s"'
_WEBSOCKET_CHATTER = frozenset({"connection open", "connection closed"})


class WebSocketChatterFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.msg
        if not isinstance(message, str):
            return True
        return not (message in _WEBSOCKET_CHATTER or message.startswith(_WEBSOCKET_CHATTER_PREFIX))


class TextFormatter(logging.Formatter):
    """`INFO:     message key=value …` (uvicorn's own layout, so the gateway's lines and uvicorn's line up).

    Fields the message already shows (a record's `fields_in_message`) are not repeated; a record with a
    `text_detail` (the start-up banner) shows that block under its message instead of its fields.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname + ':':<10}{record.getMessage()}"
        fields = getattr(record, "fields", None)
        detail = getattr(record, "text_detail", None)
        if detail:
            line = f"{line}\n{detail}"
        elif fields:
            skip = getattr(record, "fields_in_message", ())
            shown = " ".join(
                f"{key}={_text(value)}" for key, value in fields.items() if value is not None and key not in skip
            )
            if shown:
                line = f"{line} {shown}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            for key, value in fields.items():
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(
    log_format: str = "text", level: str = "info", *, request_lines: bool = True, stream: TextIO | None = None
) -> logging.Handler:
    """One stderr handler for the whole process in `log_format`; the root at `level`.

    `request_lines=False` silences the per-request lines (the demo summarises requests instead). uvicorn's
    access log is switched off either way: the request log replaces it. Calling it again replaces the handler.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: expected one of {LOG_FORMATS}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings (deprecations...) in the same format, not raw on stderr
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()  # whatever uvicorn.Config installed: everything goes through ours
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # Alembic narrates every migration step and plugin at INFO; the banner already says which revision the ledger
    # is at, so only its warnings and errors are worth a line.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, WebSocketChatterFilter) for f in error_logger.filters):
        error_logger.addFilter(WebSocketChatterFilter())
    logging.getLogger(REQUEST_LOGGER).setLevel(logging.NOTSET if request_lines else logging.WARNING)
    return handler

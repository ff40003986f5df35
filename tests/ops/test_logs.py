"""Log formats (text for people, one JSON object per line) and the quieting of uvicorn's per-WebSocket lines.

Formats records directly; `configure_logging` is exercised on a private stream and the process's logging is
restored after each test.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from delivery_gateway.ops.logs import JsonFormatter, TextFormatter, WebSocketChatterFilter, configure_logging


def record(
    message: str = "POST /graphql 200", level: int = logging.INFO, name: str = "x", **extra
) -> logging.LogRecord:
    entry = logging.LogRecord(name, level, __file__, 1, message, (), None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_carry_the_fields_as_keys() -> None:
    fields = {"request_id": "r-1", "status": 200, "caller": None, "duration_ms": 1.5}
    line = JsonFormatter().format(record(fields=fields))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "x" and entry["message"] == "POST /graphql 200"
    assert entry["request_id"] == "r-1" and entry["status"] == 200 and entry["caller"] is None
    assert entry["time"].endswith("+00:00")


def test_json_keeps_an_exception_on_its_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        entry = record(level=logging.ERROR)
        entry.exc_info = sys.exc_info()
    line = JsonFormatter().format(entry)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]


def test_text_lines_show_fields_not_already_in_the_message() -> None:
    fields = {"method": "POST", "path": "/graphql", "status": 200, "request_id": "r-1", "caller": None, "op": "A B"}
    line = TextFormatter().format(record(fields=fields, fields_in_message=("method", "path", "status")))
    assert line == 'INFO:     POST /graphql 200 request_id=r-1 op="A B"'


def test_text_shows_a_block_under_the_banner_title() -> None:
    line = TextFormatter().format(record("starting", fields={"a": "1"}, text_detail="  a: 1"))
    assert line == "INFO:     starting\n  a: 1"


@pytest.mark.parametrize(
    ("message", "level", "kept"),
    [
        ('%s - "WebSocket %s" [accepted]', logging.INFO, False),
        ('%s - "WebSocket %s" 403', logging.INFO, False),
        ("connection open", logging.INFO, False),
        ("connection closed", logging.INFO, False),
        ("Application startup complete.", logging.INFO, True),
        ("connection closed", logging.WARNING, True),
        ("Exception in ASGI application\n", logging.ERROR, True),
    ],
)
def test_websocket_chatter_is_dropped_and_real_problems_kept(message: str, level: int, kept: bool) -> None:
    assert WebSocketChatterFilter().filter(record(message, level, "uvicorn.error")) is kept


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "delivery_gateway.requests")
    saved = (
        root.level,
        list(root.handlers),
        {
            n: (
                logging.getLogger(n).level,
                list(logging.getLogger(n).filters),
                logging.getLogger(n).propagate,
                list(logging.getLogger(n).handlers),
            )
            for n in names
        },
    )
    yield
    logging.captureWarnings(False)
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, (level, filters, propagate, handlers) in saved[2].items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.filters[:] = filters
        logger.propagate = propagate
        logger.handlers[:] = handlers


def test_configure_logging_routes_uvicorn_and_the_gateway_through_one_handler(restore_logging) -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    configure_logging("json", "info", stream=stream)  # idempotent: still one handler, one filter
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/graphql")
    logging.getLogger("uvicorn.access").info("an access line the request log replaces")
    logging.getLogger("delivery_gateway.requests").info("GET /healthz 200", extra={"fields": {"status": 200}})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [entry["message"] for entry in lines] == ["Started server process [1]", "GET /healthz 200"]


def test_request_lines_can_be_switched_off_and_levels_filter(restore_logging) -> None:
    stream = io.StringIO()
    configure_logging("text", "info", request_lines=False, stream=stream)
    assert not logging.getLogger("delivery_gateway.requests").isEnabledFor(logging.INFO)
    configure_logging("text", "warning", stream=stream)
    assert not logging.getLogger("delivery_gateway.requests").isEnabledFor(logging.INFO)
    assert logging.getLogger("delivery_gateway.startup").isEnabledFor(logging.WARNING)
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")

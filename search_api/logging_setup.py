"""Logging of the service: JSON lines (or text) carrying the id of the request each line belongs to."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import unicodedata
from datetime import UTC, datetime
from typing import Any, Literal

# The id of the request being handled, set by the request middleware; "-" outside requests.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# LogRecord attributes that are not extra fields passed with `extra={...}` (uvicorn adds an ANSI-coloured copy).
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "taskName", "color_message"}


# Characters that end or rewrite a line in a terminal, an editor or a log shipper: C0 and C1 controls, DEL, the
# Unicode line and paragraph separators, and format characters (bidi overrides reorder what a reader sees).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# JSON escapes C0 controls itself; it leaves these raw: DEL and C1 (`str.splitlines` and some viewers break lines
# on NEL and the separators) and the bidi controls.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# A `key=value` value that would read as several pairs, or as nothing, unless quoted.
_NEEDS_QUOTES = re.compile(r'[\s="]|^$')


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control, separator and format character written as `\\xNN` or `\\uNNNN`, so one
    log record is one line whatever a request carried (a path with `%0a` cannot forge a second record).
    `keep_newlines`: for tracebacks, which span lines by nature (the caller indents them)."""
    if text.isprintable():  # the usual case, and a quick one
        return text
    return "".join(
        char
        if (keep_newlines and char == "\n") or unicodedata.category(char) not in _UNSAFE_CATEGORIES
        else (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        for char in text
    )


def _text_value(value: Any) -> str:
    text = escape_controls(str(value))
    return '"' + text.replace('"', '\\"') + '"' if _NEEDS_QUOTES.search(text) else text


class RequestIdFilter(logging.Filter):
    """Stamp every record with the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group(0)):04x}", line)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the request id and `extra` fields as key=value pairs.

    One record is one line: control characters in the message and the fields are escaped, a field value with
    blanks, `=` or quotes is quoted, and a traceback's lines are indented under their record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        line += "".join(f" {escape_controls(key)}={_text_value(value)}" for key, value in _extra_fields(record).items())
        details = [self.formatException(record.exc_info)] if record.exc_info else []
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for block in details:
            line += "".join(f"\n    {escape_controls(part, keep_newlines=True)}" for part in block.splitlines())
        return line


def configure_logging(log_format: Literal["json", "text"], level: str = "INFO") -> None:
    """Send every log record (the service's and uvicorn's) to stderr in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # The request middleware writes the access log (without query strings, which may carry secrets).
    logging.getLogger("uvicorn.access").disabled = True

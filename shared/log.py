"""Logging: one JSON object per line, stamped with the request id of the task that logs.

Lines are formatted when logged (so they carry the logging task's request id) and
written to stdout in batches: inside a running event loop, once per loop iteration
(one ``write`` for every line logged meanwhile) instead of a write and a flush per
line, which was most of an access line's cost (docs/performance.md); outside a loop,
at once. A thread with a ``QueueHandler`` was not used: under the GIL it spends the
same CPU per line, plus a wake-up per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from shared.context import get_request_id

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format records as JSON with ``ts, level, logger, msg, request_id, service`` and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    _second = -1
    _second_text = ""

    def _timestamp(self, created: float) -> str:
        # ISO 8601 with milliseconds; the date and time of the second formatted once.
        second = int(created)
        if second != self._second:
            stamp = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")
            self._second_text = stamp.removesuffix("+00:00")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = get_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, still carrying the request id."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = get_request_id()
        return f"{line} [rid={request_id}]" if request_id else line


_NO_LOCK = contextlib.nullcontext()


class BatchingStreamHandler(logging.Handler):
    """Writes formatted lines to ``stream``: at once outside an event loop, else
    gathered and written together at the end of the loop's current iteration."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                self.stream.write(line + "\n")
                self.stream.flush()
                return
            if not self._pending:
                loop.call_soon(self.flush)
            self._pending.append(line)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        if self._pending:
            with self.lock or _NO_LOCK:
                lines, self._pending = self._pending, []
                lines.append("")
                self.stream.write("\n".join(lines))
                self.stream.flush()

    def close(self) -> None:
        self.flush()
        super().close()


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send every logger's records to stdout in ``fmt``, replacing earlier handlers."""
    handler = BatchingStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log duplicates ours (which has the request id); keep its errors.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

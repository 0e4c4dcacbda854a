"""What the storable-input check (:mod:`shared.inputs`, on every route of every part)
costs per request, in process: a GET with a query string, a small and a large JSON body
(the body already read, as FastAPI has by the time the check runs).

    .venv/bin/python bench/shared/input_checks.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from starlette.requests import Request

from shared.inputs import check_storable_input


def _request(method: str, query: bytes = b"", body: bytes = b"") -> Request:
    headers = [(b"host", b"bench"), (b"authorization", b"Bearer x"), (b"accept", b"*/*")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": "/api/v1/stocks",
        "query_string": query,
        "headers": headers,
        "path_params": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def _per_request(method: str, query: bytes = b"", body: bytes = b"") -> float:
    """Microseconds per check: the median of five runs of 20,000."""
    runs = []
    for _ in range(5):
        requests = [_request(method, query, body) for _ in range(20_000)]
        for request in requests:
            await request.body()
        started = time.perf_counter()
        for request in requests:
            await check_storable_input(request)
        runs.append((time.perf_counter() - started) / len(requests) * 1e6)
    return statistics.median(runs)


async def main() -> None:
    small = json.dumps({"name": "Retirement", "base_currency": "USD", "cash": "1000.50"})
    large = json.dumps({"items": [{"ticker": "AAPL", "qty": 1.5, "note": "x" * 50}] * 200})
    cases = [
        ("GET, 4 query parameters", "GET", b"limit=50&sort=-price&min_price=10&q=ac", b""),
        (f"POST, JSON {len(small)} B", "POST", b"", small.encode()),
        (f"POST, JSON {len(large)} B", "POST", b"", large.encode()),
    ]
    for label, method, query, body in cases:
        figure = await _per_request(method, query, body)
        sys.stdout.write(f"{label:32} {figure:8.2f} us/request\n")


if __name__ == "__main__":
    asyncio.run(main())

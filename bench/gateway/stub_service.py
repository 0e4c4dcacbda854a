"""The upstream of the gateway benchmark: a bare ASGI app on uvicorn (uvloop, httptools),
answering every path with the same small JSON document, as a cheap stand-in for a
service, so that what is measured is the hop in front of it.

    python bench/gateway/stub_service.py --port 9001
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

BODY = (
    b'{"ticker":"ACME","name":"Acme Corporation","exchange":"NYSE","sector":"Industrials",'
    b'"currency":"USD","last_price":"123.45","change_percent":"0.42","volume":1234567,'
    b'"as_of":"2026-01-02T21:00:00Z","data_source":"simulated"}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain any request body
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )

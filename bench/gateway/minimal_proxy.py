"""A forwarding-only ASGI proxy (no auth, no limits) with a choice of HTTP client, to
measure the client library alone: ``pool`` (the gateway's :mod:`gateway.pipeline.pool`, what it
forwards with), ``aiohttp`` (what it used before) or ``httpx``.

    python bench/gateway/minimal_proxy.py --port 9002 \
        --upstream http://127.0.0.1:9001 --client httpx
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import httpx
import uvicorn

from gateway.pipeline.pool import ConnectionPool


def make_app(upstream: str, client_name: str) -> Any:
    state: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if client_name == "pool":
                        host, port = upstream.removeprefix("http://").split(":")
                        state["client"] = ConnectionPool(host, int(port))
                    elif client_name == "aiohttp":
                        state["client"] = aiohttp.ClientSession(
                            connector=aiohttp.TCPConnector(limit=256), auto_decompress=False
                        )
                    else:
                        state["client"] = httpx.AsyncClient(
                            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
                        )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    client = state["client"]
                    await (client.aclose() if client_name == "httpx" else client.close())
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        url = upstream + scope["path"]
        client = state["client"]
        if client_name == "pool":
            answer = await client.request("GET", scope["raw_path"], [])
            body, status = await answer.read(), answer.status
            answer.release()
        elif client_name == "aiohttp":
            async with client.get(url) as response:
                body = await response.read()
                status = response.status
        else:
            response = await client.get(url)
            body, status = response.content, response.status_code
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--client", choices=("pool", "aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.upstream, args.client),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )

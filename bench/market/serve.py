"""Processes the market benchmark starts: a JWKS server, a bare FastAPI app returning a
constant (the throughput ceiling), and the market service itself.

    python bench/market/serve.py jwks   PORT PEM_FILE
    python bench/market/serve.py bare   PORT
    python bench/market/serve.py market            (MARKET_* variables as for the service)

All are served the same way: uvicorn, one process, uvloop + httptools, no access log.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvicorn
from fastapi import FastAPI
from starlette.responses import Response


def _run(app: FastAPI, port: int) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def main() -> None:
    kind = sys.argv[1]
    if kind == "jwks":
        from shared.jwt import SigningKey, jwks_document

        key = SigningKey.from_file(sys.argv[3])
        document = jwks_document([key.public_key])
        app = FastAPI()

        @app.get("/jwks")
        async def jwks() -> dict[str, object]:
            return document

        _run(app, int(sys.argv[2]))
    elif kind == "bare":
        app = FastAPI()
        body = b'{"status":"ok","value":42}'

        @app.get("/constant")
        async def constant() -> Response:
            return Response(body, media_type="application/json")

        _run(app, int(sys.argv[2]))
    elif kind == "market":
        from services.market.app import NAME, create_app
        from services.market.config import MarketSettings
        from shared.runtime import serve

        serve(NAME, MarketSettings, create_app)
    else:
        raise SystemExit(f"unknown server {kind}")


if __name__ == "__main__":
    main()

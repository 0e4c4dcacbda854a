"""The demo portfolios: seeded as ``bourse up`` seeds them (a user id, the part's NATS),
against the running platform's market (the session's simulated universe), then read
through the gateway as that user: a few years of deposits, buys, a sale, dividends and a
split, every trade at market's unadjusted close of its day, every figure filled in."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bourse.parts import PORTFOLIO
from services.portfolio import demo
from services.realtime.tests.support import mint_token
from shared.db import open_connection
from tests.infra import TestInfra
from tests.platform import Platform

pytestmark = pytest.mark.e2e


async def _seed(seeded: TestInfra, owner: str) -> None:
    conn = await open_connection(seeded.dsn_for(PORTFOLIO))
    try:
        await demo.seed_demo(
            conn, owners=[owner], nats_url=seeded.nats_url, nats_prefix=seeded.nats_prefix
        )
    finally:
        await conn.close()


async def _ledger(gateway: httpx.AsyncClient, caller: dict[str, str]) -> list[dict[str, Any]]:
    response = await gateway.get("/api/v1/portfolio/transactions?limit=200", headers=caller)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["items"]
    assert response.json()["next_cursor"] is None
    return rows


async def test_a_demo_user_has_years_of_history_at_markets_closes(
    seeded: TestInfra, platform: Platform, gateway: httpx.AsyncClient
) -> None:
    owner = str(uuid.uuid4())
    key_file = platform.environments["gateway"]["GATEWAY_JWT_PRIVATE_KEY_FILE"]
    caller = mint_token(key_file, owner, "viewer")
    await _seed(seeded, owner)
    rows = await _ledger(gateway, caller)
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["DEPOSIT"] >= 8 and kinds["BUY"] >= 4 and kinds["SELL"] >= 1, kinds
    assert kinds["DIVIDEND"] >= 1, kinds
    first = min(datetime.fromisoformat(r["executed_at"]).date() for r in rows)
    assert (date.today() - first).days > 2 * 365
    # Every trade at market's unadjusted close of its session (asked through the gateway).
    for row in (r for r in rows if r["kind"] in ("BUY", "SELL")):
        day = datetime.fromisoformat(row["executed_at"]).date()
        bars = await gateway.get(
            f"/api/v1/stocks/{row['ticker']}/prices",
            params={"start": day.isoformat(), "end": day.isoformat(), "adjusted": "false"},
            headers=caller,
        )
        assert bars.status_code == 200, bars.text
        [bar] = bars.json()["bars"]
        assert Decimal(row["price"]) == Decimal(str(bar["close"])), row
    # The split of a held ticker (the session's universe has splits in the window).
    assert kinds["SPLIT"] >= 1, kinds
    split = next(r for r in rows if r["kind"] == "SPLIT")
    assert split["split_to"] != split["split_from"]
    valued = (await gateway.get("/api/v1/portfolio", headers=caller)).json()
    assert len(valued["positions"]) >= 3 and valued["unpriced"] == []
    assert Decimal(valued["dividends"]) > 0 and Decimal(valued["realised_pnl"]) != 0
    assert Decimal(valued["cash"]) > 0 and Decimal(valued["total_value"]) > 50_000
    performance = (await gateway.get("/api/v1/portfolio/performance", headers=caller)).json()
    periods = {p["period"]: p for p in performance["periods"]}
    for name in ("1M", "1Y", "INCEPTION"):
        assert periods[name]["available"], periods[name]
        assert periods[name]["twr"]["value"] is not None
        assert periods[name]["mwr"]["value"] is not None
    assert performance["volatility"]["value"] is not None
    # Seeding again leaves a portfolio with history alone.
    await _seed(seeded, owner)
    assert len(await _ledger(gateway, caller)) == len(rows)

"""Backup and restore of PostgreSQL as docs/operations.md tells an operator to do it:
``pg_dump --format=custom`` of the platform's database while writes go on, then
``pg_restore`` into a fresh database, and the parts started on the copy.

A database of the test's own is populated by the real parts (market loads a small
simulated universe, recommendations publishes two runs into its hash-chained ledger,
portfolio records a reader's trades) while a writer keeps recording deposits in another
portfolio during the dump. Restored, the copy answers every compared read route of market,
recommendations and portfolio exactly as the original does, its ledger verifies intact with
the same head, and the writer's deposits in it are a gap-free prefix of those written (the
dump is one consistent snapshot, not a torn copy).
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bourse.infra import postgres_bin_dir
from bourse.parts import MARKET, PORTFOLIO, RECOMMENDATIONS
from shared.db import drop_database, ensure_database, open_connection, with_database
from tests.infra import TestInfra, own_infra
from tests.inprocess import InProcessApp, running_app

pytestmark = pytest.mark.e2e

UNIVERSE = 40
READER = str(uuid.uuid4())  # owns the portfolio compared after the restore
WRITER = str(uuid.uuid4())  # keeps depositing while the dump runs


@dataclasses.dataclass
class Parts:
    market: InProcessApp
    recommendations: InProcessApp
    portfolio: InProcessApp


async def _start(stack: AsyncExitStack, infra: TestInfra, work: Path) -> Parts:
    await asyncio.to_thread(work.mkdir)
    market = await stack.enter_async_context(
        running_app(
            "market", infra, work, universe_size=UNIVERSE, universe_years=2, feed_mode="off"
        )
    )
    recommendations = await stack.enter_async_context(
        running_app("recommendations", infra, work, catch_up_run=False)
    )
    portfolio = await stack.enter_async_context(running_app("portfolio", infra, work))
    return Parts(market, recommendations, portfolio)


async def _wait_loaded(infra: TestInfra) -> None:
    conn = await open_connection(infra.admin_url)
    try:
        for _ in range(900):
            state = await conn.fetchval(
                "SELECT state FROM market.universe_loads ORDER BY id DESC LIMIT 1"
            )
            if state == "complete":
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    raise AssertionError(f"the universe is still {state}")


async def _populate(parts: Parts, infra: TestInfra) -> tuple[str, str]:
    """Two published runs, a reader's portfolio with trades, the writer's portfolio."""
    await _wait_loaded(infra)
    conn = await open_connection(infra.admin_url)
    try:
        days = [r["day"] for r in await conn.fetch(
            "SELECT DISTINCT day FROM market.daily_bars ORDER BY day DESC LIMIT 3"
        )]  # fmt: skip
        tickers = [r["ticker"] for r in await conn.fetch(
            "SELECT ticker FROM market.securities ORDER BY ticker LIMIT 2"
        )]  # fmt: skip
    finally:
        await conn.close()
    rec = parts.recommendations
    for day in sorted(days[1:]):
        queued = await rec.client.post(
            "/api/v1/recommendations/runs",
            json={"as_of": day.isoformat()},
            headers=rec.token("analyst"),
        )
        assert queued.status_code == 202, queued.text
        for _ in range(400):
            run = await rec.client.get(
                f"/api/v1/recommendations/runs/{queued.json()['id']}", headers=rec.token()
            )
            if run.json()["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.25)
        assert run.json()["status"] == "completed", run.text
    pf = parts.portfolio
    reader = await pf.client.post(
        "/api/v1/portfolio",
        json={"name": "kept", "cash": "100000"},
        headers=pf.token(subject=READER),
    )
    assert reader.status_code == 201, reader.text
    reader_id = reader.json()["id"]
    for ticker, quantity, price in ((tickers[0], "10", "101.5"), (tickers[1], "4", "55.25")):
        trade = await pf.client.post(
            f"/api/v1/portfolios/{reader_id}/transactions",
            json={"kind": "BUY", "ticker": ticker, "quantity": quantity, "price": price},
            headers={**pf.token(subject=READER), "If-Match": "*"},
        )
        assert trade.status_code == 201, trade.text
    writer = await pf.client.post(
        "/api/v1/portfolio", json={"name": "busy"}, headers=pf.token(subject=WRITER)
    )
    assert writer.status_code == 201, writer.text
    return reader_id, writer.json()["id"]


def _read_routes(reader_id: str, ticker: str) -> list[tuple[str, str, str]]:
    """(part, path, caller) of every compared read."""
    return [
        ("market", "/api/v1/stocks?limit=100", "any"),
        ("market", f"/api/v1/stocks/{ticker}", "any"),
        ("market", f"/api/v1/stocks/{ticker}/prices", "any"),
        ("market", f"/api/v1/stocks/{ticker}/analysis", "any"),
        ("market", "/api/v1/market/sectors", "any"),
        ("recommendations", "/api/v1/recommendations", "any"),
        ("recommendations", "/api/v1/recommendations/runs", "any"),
        ("recommendations", "/api/v1/recommendations/history", "any"),
        ("recommendations", "/api/v1/recommendations/track-record", "any"),
        ("recommendations", "/api/v1/recommendations/ledger/verify", "any"),
        ("portfolio", "/api/v1/portfolios", READER),
        ("portfolio", f"/api/v1/portfolios/{reader_id}", READER),
        ("portfolio", f"/api/v1/portfolios/{reader_id}/transactions", READER),
    ]


async def _answers(parts: Parts, routes: list[tuple[str, str, str]]) -> dict[str, Any]:
    answers = {}
    for part, path, caller in routes:
        app: InProcessApp = getattr(parts, part)
        headers = app.token() if caller == "any" else app.token(subject=caller)
        response = await app.client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        answers[path] = response.json()
    return answers


async def _deposits(portfolio: InProcessApp, portfolio_id: str) -> list[int]:
    """Every deposit of the writer's portfolio, page after page."""
    amounts: list[int] = []
    cursor = ""
    while True:
        page = await portfolio.client.get(
            f"/api/v1/portfolios/{portfolio_id}/transactions?limit=200{cursor}",
            headers=portfolio.token(subject=WRITER),
        )
        assert page.status_code == 200, page.text
        body = page.json()
        amounts += [int(Decimal(i["amount"])) for i in body["items"] if i["kind"] == "DEPOSIT"]
        if not body["next_cursor"]:
            return amounts
        cursor = f"&cursor={body['next_cursor']}"


def _tool(name: str, *args: str) -> None:
    result = subprocess.run(
        [str(postgres_bin_dir() / name), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{name}: {result.stderr}"


@pytest.fixture
async def original(infra: TestInfra) -> AsyncIterator[TestInfra]:
    async with own_infra(infra, "backup", [MARKET, RECOMMENDATIONS, PORTFOLIO]) as own:
        yield own


async def test_a_dump_under_writes_restores_to_the_same_answers(
    original: TestInfra, tmp_path: Path
) -> None:
    dump = tmp_path / "bourse.dump"
    restored = dataclasses.replace(
        original,
        database=f"{original.database}_restored",
        admin_url=with_database(original.admin_server_url, f"{original.database}_restored"),
        # Fresh caches and streams: the copy must answer from its database alone.
        redis_prefix=f"{original.redis_prefix}restored:",
        nats_prefix=f"{original.nats_prefix}restored",
    )
    async with AsyncExitStack() as stack:
        parts = await _start(stack, original, tmp_path / "original")
        reader_id, writer_id = await _populate(parts, original)
        pf = parts.portfolio
        written: list[int] = []
        stop = asyncio.Event()

        async def write() -> None:
            while not stop.is_set():
                n = len(written) + 1
                response = await pf.client.post(
                    f"/api/v1/portfolios/{writer_id}/transactions",
                    json={"kind": "DEPOSIT", "amount": str(n), "note": f"w{n}"},
                    headers={**pf.token(subject=WRITER), "If-Match": "*"},
                )
                assert response.status_code == 201, response.text
                written.append(n)

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.5)  # writes under way before the dump starts
        before = len(written)
        await asyncio.to_thread(
            _tool, "pg_dump", "--format=custom", f"--file={dump}", original.admin_url
        )
        during = len(written) - before
        await asyncio.sleep(0.3)
        stop.set()
        await writer
        assert during > 0, "no write happened while pg_dump ran"
        ticker = (await _answers(parts, [("market", "/api/v1/stocks?limit=1", "any")]))[
            "/api/v1/stocks?limit=1"
        ]["items"][0]["ticker"]
        routes = _read_routes(reader_id, ticker)
        expected = await _answers(parts, routes)

    await ensure_database(original.admin_server_url, restored.database)
    try:
        await asyncio.to_thread(
            _tool, "pg_restore", "--exit-on-error", f"--dbname={restored.admin_url}", str(dump)
        )
        async with AsyncExitStack() as stack:
            copy = await _start(stack, restored, tmp_path / "restored")
            actual = await _answers(copy, routes)
            deposits = await _deposits(copy.portfolio, writer_id)
        # Something to compare: the ledger has calls, the reader its deposit and two trades.
        assert expected["/api/v1/recommendations"]["items"]
        assert len(expected[f"/api/v1/portfolios/{reader_id}/transactions"]["items"]) == 3
        for path in expected:
            assert actual[path] == expected[path], path
        ledger = actual["/api/v1/recommendations/ledger/verify"]
        assert ledger["intact"] is True and ledger["checked"] > 0 and not ledger["first_break"]
        kept = sorted(deposits)
        assert kept == list(range(1, len(kept) + 1)), "the copy is not one snapshot"
        assert before <= len(kept) <= len(written)
        print(  # noqa: T201
            f"dump under writes: {during} deposits during pg_dump, {len(kept)} of "
            f"{len(written)} in the copy; ledger {ledger['checked']} calls intact"
        )
    finally:
        await drop_database(original.admin_server_url, restored.database)

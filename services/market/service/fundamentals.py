"""Fundamentals: importing SEC companyfacts, the simulated universe's facts, and the
metrics served on ``/stocks/{ticker}`` and its analysis (point in time, see
:mod:`services.market.domain.fundamentals`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from typing import Any

import asyncpg
import numpy as np

from services.market.domain import Security
from services.market.domain import fundamentals as fx
from services.market.errors import InvalidImportError, StockNotFoundError
from services.market.importers import companyfacts
from services.market.repository import fundamentals as repo
from services.market.repository import securities

SEC_SOURCE = "sec:companyfacts"
SIMULATED_SOURCE = "simulated"


def provenance(data_source: str) -> str:
    """The ``data_sources`` label of a fundamentals source (``market:simulated``)."""
    return f"market:{data_source}"


async def import_company_facts(
    conn: asyncpg.Connection, doc: Any, *, ticker: str | None = None, today: date | None = None
) -> dict[str, Any]:
    """Store one company's facts (the security named by ``ticker``, else by the
    document's CIK) and refresh its figures, in ``conn``'s transaction."""
    try:
        parsed = await asyncio.to_thread(companyfacts.parse, doc)
    except companyfacts.CompanyFactsError as exc:
        raise InvalidImportError(str(exc)) from None
    if ticker is None and parsed.cik is not None:
        ticker = await repo.security_for_cik(conn, parsed.cik)
    if ticker is None:
        raise InvalidImportError(
            "No security for this document: give its ticker, or import the securities"
            " master (with CIKs) first.",
            details={"cik": parsed.cik, "entity_name": parsed.entity_name},
        )
    found = await securities.get_security(conn, ticker)
    if found is None:
        raise StockNotFoundError(ticker)
    security = found[0]
    assert security.security_id is not None
    written = await repo.write_facts(
        conn, [(security.security_id, f) for f in parsed.facts], SEC_SOURCE
    )
    await refresh_figures(conn, [security.security_id], today or date.today(), SEC_SOURCE)
    return {
        "ticker": ticker,
        "cik": parsed.cik,
        "entity_name": parsed.entity_name,
        "facts": len(parsed.facts),
        "written": written,
        "malformed": parsed.malformed,
        "by_metric": dict(Counter(f.metric for f in parsed.facts)),
        "data_source": provenance(SEC_SOURCE),
    }


async def refresh_figures(
    conn: asyncpg.Connection, security_ids: list[int], as_of: date, data_source: str
) -> None:
    """Recompute the stored figures of ``security_ids`` as of ``as_of``; a security's
    shares outstanding follow its latest filed count."""
    rows = []
    shares_ids: list[int] = []
    shares: list[int] = []
    for security_id in security_ids:
        facts, _ = await repo.facts_for(conn, security_id, as_of)
        figures = fx.figures(facts, as_of)
        rows.append((security_id, figures))
        if figures.shares_outstanding and figures.shares_outstanding >= 1:
            shares_ids.append(security_id)
            shares.append(int(figures.shares_outstanding))
    await repo.write_figures(conn, rows, as_of, data_source)
    if shares_ids:
        await securities.set_shares_outstanding(conn, shares_ids, shares)


async def fundamentals_of(
    conn: asyncpg.Connection, security: Security, price: float | None, as_of: date | None = None
) -> dict[str, Any] | None:
    """The fundamental metrics of ``security`` at ``price`` as known on ``as_of`` (today);
    None without facts."""
    assert security.security_id is not None
    as_of = as_of or date.today()
    facts, sources = await repo.facts_for(conn, security.security_id, as_of)
    if not facts:
        return None
    figures = fx.figures(facts, as_of)
    return {
        "as_of": as_of,
        "period_end": figures.period_end,
        "price": price,
        **fx.ratios(figures, price, security.shares_outstanding),
        "revenue_ttm": figures.revenue_ttm,
        "net_income_ttm": figures.net_income_ttm,
        "eps_ttm": figures.eps_ttm,
        "dividends_per_share_ttm": figures.dividends_ttm,
        "shares_outstanding": figures.shares_outstanding,
        "equity": figures.equity,
        "total_debt": figures.total_debt,
        "data_sources": [provenance(s) for s in sources],
        "methodology": fx.METHODOLOGY,
    }


async def simulate(conn: asyncpg.Connection, last_session: date, seed: int) -> int:
    """Simulated facts for every simulated security with a quote and a share count,
    consistent with its price (shares x last close = its market cap); how many facts."""
    rows = await repo.simulated_prices(conn)
    rng = np.random.default_rng(seed)
    facts: list[tuple[int, fx.Fact]] = []
    for security_id, shares, price in rows:
        pe, pb, leverage = rng.lognormal([np.log(18), np.log(3), np.log(0.6)], [0.4, 0.5, 0.6])
        facts.extend(
            (security_id, f)
            for f in fx.simulated_facts(
                shares=float(shares),
                price=price,
                last_session=last_session,
                pe=float(pe),
                margin=float(np.clip(rng.normal(0.11, 0.05), 0.02, 0.4)),
                pb=float(pb),
                leverage=float(leverage),
                growth=float(rng.normal(0.06, 0.08)),
                dividend_yield=float(max(0.0, rng.normal(0.015, 0.012))),
            )
        )
    await repo.write_facts(conn, facts, SIMULATED_SOURCE)
    by_id: dict[int, list[fx.Fact]] = {}
    for security_id, fact in facts:
        by_id.setdefault(security_id, []).append(fact)
    figures = await asyncio.to_thread(
        lambda: [(i, fx.figures(f, last_session)) for i, f in by_id.items()]
    )
    await repo.write_figures(conn, figures, last_session, SIMULATED_SOURCE)
    return len(facts)

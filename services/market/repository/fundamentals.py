"""Fundamental facts as filed, and the per-security figures derived from them."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.market.domain.fundamentals import Fact, Figures


async def write_facts(
    conn: asyncpg.Connection, rows: list[tuple[int, Fact]], data_source: str
) -> int:
    """Insert (security id, fact) rows (a fact already stored with the same filing is
    updated); how many rows were new or changed."""
    if not rows:
        return 0
    facts = [f for _, f in rows]
    status: str = await conn.execute(
        "INSERT INTO fundamental_facts (security_id, metric, period_start, period_end, filed,"
        " value, concept, fiscal_year, fiscal_period, form, data_source)"
        " SELECT u.*, $11 FROM unnest($1::int[], $2::text[], $3::date[], $4::date[],"
        " $5::date[], $6::float8[], $7::text[], $8::smallint[], $9::text[], $10::text[]) AS u"
        " ON CONFLICT (security_id, metric, period_start, period_end, filed) DO UPDATE SET"
        " value = EXCLUDED.value, concept = EXCLUDED.concept, form = EXCLUDED.form"
        " WHERE fundamental_facts.value IS DISTINCT FROM EXCLUDED.value",
        [i for i, _ in rows],
        [f.metric for f in facts],
        [f.start for f in facts],
        [f.end for f in facts],
        [f.filed for f in facts],
        [f.value for f in facts],
        [f.concept for f in facts],
        [f.fiscal_year for f in facts],
        [f.fiscal_period for f in facts],
        [f.form for f in facts],
        data_source,
    )
    return int(status.split()[-1])


async def facts_for(
    conn: asyncpg.Connection, security_id: int, as_of: date
) -> tuple[list[Fact], list[str]]:
    """The facts of ``security_id`` filed on or before ``as_of``, and their sources."""
    rows = await conn.fetch(
        "SELECT metric, period_start, period_end, filed, value, concept, fiscal_year,"
        " fiscal_period, form, data_source FROM fundamental_facts"
        " WHERE security_id = $1 AND filed <= $2",
        security_id,
        as_of,
    )
    facts = [Fact(*r[:9]) for r in rows]
    return facts, sorted({r["data_source"] for r in rows})


async def write_figures(
    conn: asyncpg.Connection, rows: list[tuple[int, Figures]], as_of: date, data_source: str
) -> None:
    """Replace the figures of each (security id, figures) row."""
    figures = [f for _, f in rows]
    await conn.execute(
        "INSERT INTO fundamental_metrics (security_id, as_of, period_end, revenue_ttm,"
        " net_income_ttm, eps_ttm, dividends_ttm, revenue_growth, shares_outstanding, equity,"
        " total_debt, data_source)"
        " SELECT u.id, $2, u.period_end, u.revenue, u.net_income, u.eps, u.dividends,"
        " u.growth, u.shares, u.equity, u.debt, $12 FROM unnest($1::int[], $3::date[],"
        " $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[],"
        " $10::float8[], $11::float8[]) AS u(id, period_end, revenue, net_income, eps,"
        " dividends, growth, shares, equity, debt)"
        " ON CONFLICT (security_id) DO UPDATE SET as_of = EXCLUDED.as_of,"
        " period_end = EXCLUDED.period_end, revenue_ttm = EXCLUDED.revenue_ttm,"
        " net_income_ttm = EXCLUDED.net_income_ttm, eps_ttm = EXCLUDED.eps_ttm,"
        " dividends_ttm = EXCLUDED.dividends_ttm, revenue_growth = EXCLUDED.revenue_growth,"
        " shares_outstanding = EXCLUDED.shares_outstanding, equity = EXCLUDED.equity,"
        " total_debt = EXCLUDED.total_debt, data_source = EXCLUDED.data_source",
        [i for i, _ in rows],
        as_of,
        [f.period_end for f in figures],
        [f.revenue_ttm for f in figures],
        [f.net_income_ttm for f in figures],
        [f.eps_ttm for f in figures],
        [f.dividends_ttm for f in figures],
        [f.revenue_growth for f in figures],
        [f.shares_outstanding for f in figures],
        [f.equity for f in figures],
        [f.total_debt for f in figures],
        data_source,
    )


async def security_for_cik(conn: asyncpg.Connection, cik: int) -> str | None:
    """The ticker of the security with SEC ``cik`` (the securities master's column; None
    on a schema without it)."""
    has_cik = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = 'securities' AND column_name = 'cik')"
    )
    if not has_cik:
        return None
    ticker: str | None = await conn.fetchval(
        "SELECT ticker FROM securities WHERE cik = $1 ORDER BY status = 'listed' DESC LIMIT 1",
        cik,
    )
    return ticker


async def simulated_prices(conn: asyncpg.Connection) -> list[tuple[int, int, float]]:
    """(security_id, shares_outstanding, price) of the simulated securities with both."""
    rows = await conn.fetch(
        "SELECT s.security_id, s.shares_outstanding, q.price FROM securities s"
        " JOIN latest_quotes q USING (ticker)"
        " WHERE s.data_source = 'simulated' AND s.shares_outstanding IS NOT NULL"
        " ORDER BY s.security_id"
    )
    return [(r[0], r[1], float(r[2])) for r in rows]

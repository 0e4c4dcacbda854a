"""Fundamentals from the SEC companyfacts format (a fixture written by hand in the SEC's
documented shape: ``recorded/companyfacts_CIK0000000042.json``, made-up figures): concept
fallbacks, malformed entries, point in time by filing date, every derived metric against an
independent pandas recomputation, the import on the database and the served metrics."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.market.domain import fundamentals as fx
from services.market.importers import companyfacts
from services.market.repository import securities
from services.market.service import fundamentals as service
from services.market.tests.factories import in_request, new_security
from shared.db import create_pool

DOC = json.loads(
    (Path(__file__).parent / "recorded" / "companyfacts_CIK0000000042.json").read_text()
)


def test_concepts_fall_back_per_period_and_malformed_entries_are_counted() -> None:
    parsed = companyfacts.parse(DOC)
    assert (parsed.cik, parsed.entity_name) == (42, "Acme Widgets Inc.")
    revenue = {(f.end, f.concept) for f in parsed.facts if f.metric == "revenue"}
    # Revenues for 2022 (the later concept's 2022-Q1 value of 1 is not taken), then
    # RevenueFromContractWithCustomer... for 2023; the 8-K's entry is not a periodic report.
    assert (date(2022, 3, 31), "us-gaap:Revenues") in revenue
    assert (
        date(2022, 3, 31),
        "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax",
    ) not in revenue
    assert (
        date(2023, 3, 31),
        "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax",
    ) in revenue
    assert parsed.malformed == 2  # "n/a" and an entry without "end"
    eps = [f for f in parsed.facts if f.metric == "eps" and f.end == date(2023, 3, 31)]
    assert [f.value for f in eps] == [1.0]  # diluted, not basic
    debt = [f for f in parsed.facts if f.metric == "total_debt"]
    assert [(f.end, f.value) for f in debt] == [(date(2023, 12, 31), 22_000_000.0)]
    with pytest.raises(companyfacts.CompanyFactsError):
        companyfacts.parse({"cik": 1})


def reference(doc: dict[str, Any], as_of: date, price: float) -> dict[str, float | None]:
    """The metrics recomputed with pandas straight from the document."""
    concepts = {
        "revenue": ["Revenues", "RevenueFromContractWithCustomerExcludingAssessedTax"],
        "net_income": ["NetIncomeLoss"],
        "eps": ["EarningsPerShareDiluted", "EarningsPerShareBasic"],
        "dps": ["CommonStockDividendsPerShareDeclared"],
    }
    rows = []
    for taxonomy, items in doc["facts"].items():
        for concept, body in items.items():
            for unit, entries in body["units"].items():
                for e in entries:
                    rows.append({"taxonomy": taxonomy, "concept": concept, "unit": unit, **e})
    df = pd.DataFrame(rows)
    df = df[df.form.isin(["10-K", "10-Q"]) & df.end.notna()]
    df = df[pd.to_numeric(df.val, errors="coerce").notna()].copy()
    df["val"] = df.val.astype(float)
    for col in ("start", "end", "filed"):
        df[col] = pd.to_datetime(df[col])
    df = df[df.filed <= pd.Timestamp(as_of)]
    df["days"] = (df.end - df.start).dt.days

    def quarterly(metric: str) -> pd.Series:
        part = df[df.concept.isin(concepts[metric])].copy()
        part["rank"] = part.concept.map({c: i for i, c in enumerate(concepts[metric])})
        part = part.sort_values(["rank", "filed"]).drop_duplicates(["start", "end"], keep="last")
        part = part.sort_values("rank").drop_duplicates(["start", "end"], keep="first")
        q = part[part.days.between(80, 100)].set_index("end").val
        for _, year in part[part.days.between(350, 380)].iterrows():
            inside = q[(q.index > year.start) & (q.index < year.end)]
            if year.end not in q.index and len(inside) == 3:
                q.loc[year.end] = year.val - inside.sum()
        return q.sort_index()

    ttm = {m: quarterly(m).rolling(4).sum() for m in concepts}
    last = {m: (s.dropna().iloc[-1] if s.notna().any() else None) for m, s in ttm.items()}
    inst = df[df.days.isna() | (df.days == 0)]
    equity = inst[inst.concept == "StockholdersEquity"].sort_values("end").val.iloc[-1]
    shares = (
        inst[inst.concept == "EntityCommonStockSharesOutstanding"].sort_values("end").val.iloc[-1]
    )
    debt_parts = inst[inst.concept.isin(["LongTermDebtNoncurrent", "LongTermDebtCurrent"])]
    debt = debt_parts[debt_parts.end == debt_parts.end.max()].val.sum() if len(debt_parts) else None
    revenue = ttm["revenue"].dropna()
    growth = revenue.iloc[-1] / revenue.iloc[-5] - 1 if len(revenue) >= 5 else None
    cap = price * shares
    return {
        "market_cap": cap,
        "pe_ratio": price / last["eps"] if last["eps"] and last["eps"] > 0 else None,
        "pb_ratio": cap / equity,
        "dividend_yield": last["dps"] / price if last["dps"] is not None else None,
        "revenue_growth_yoy": growth,
        "net_margin": (
            last["net_income"] / last["revenue"]
            if last["revenue"] and last["net_income"] is not None
            else None
        ),
        "debt_to_equity": debt / equity if debt else None,
    }


@pytest.mark.parametrize("as_of", [date(2024, 3, 1), date(2023, 12, 1)])
def test_every_metric_matches_a_pandas_recomputation(as_of: date) -> None:
    facts = companyfacts.parse(DOC).facts
    served = fx.ratios(fx.figures(facts, as_of), 50.0, None)
    expected = reference(DOC, as_of, 50.0)
    assert served.keys() == expected.keys()
    for name, value in expected.items():
        assert served[name] == pytest.approx(value), name
    if as_of == date(2024, 3, 1):  # the 10-K made Q4 2023 = year - Q1..Q3
        assert served["revenue_growth_yoy"] == pytest.approx(43_000_000 / 38_000_000 - 1)
        assert served["pe_ratio"] == pytest.approx(50.0 / 4.6)


def test_a_fact_filed_later_is_not_visible_before_its_filing_date() -> None:
    facts = companyfacts.parse(DOC).facts
    before = fx.figures(facts, date(2024, 2, 14))  # the 10-K is filed on 2024-02-15
    after = fx.figures(facts, date(2024, 2, 15))
    assert before.total_debt is None and after.total_debt == 22_000_000.0
    assert before.equity == 40_000_000.0 and after.equity == 44_000_000.0
    assert before.shares_outstanding == 990_000.0 and after.shares_outstanding == 980_000.0
    assert before.period_end == date(2023, 9, 30) and after.period_end == date(2023, 12, 31)
    # A restatement filed later replaces the period from its filing date only.
    restated = [
        *facts,
        fx.Fact("equity", date(2023, 12, 31), date(2023, 12, 31), date(2024, 5, 1), 1.0),
    ]
    assert fx.figures(restated, date(2024, 4, 30)).equity == 44_000_000.0
    assert fx.figures(restated, date(2024, 5, 1)).equity == 1.0


def test_simulated_facts_are_consistent_with_the_price() -> None:
    facts = fx.simulated_facts(
        shares=2_000_000,
        price=40.0,
        last_session=date(2026, 11, 30),
        pe=15.0,
        margin=0.1,
        pb=2.0,
        leverage=0.5,
        growth=0.0,
        dividend_yield=0.02,
    )
    assert all(f.filed <= date(2026, 11, 30) for f in facts)
    served = fx.ratios(fx.figures(facts, date(2026, 11, 30)), 40.0, None)
    assert served["market_cap"] == 80_000_000.0  # shares x price: the calibrated cap
    assert served["pe_ratio"] == pytest.approx(15.0)
    assert served["pb_ratio"] == pytest.approx(2.0)
    assert served["dividend_yield"] == pytest.approx(0.02)
    assert served["net_margin"] == pytest.approx(0.1)


async def test_the_import_stores_facts_and_serves_them_point_in_time(market_dsn: str) -> None:
    pool = await create_pool(market_dsn, schema="market", application_name="facts")
    try:
        async with pool.acquire() as conn:
            ticker, security_id = await new_security(conn)
        summary = await in_request(
            pool, service.import_company_facts, DOC, ticker=ticker, today=date(2024, 3, 1)
        )
        again = await in_request(
            pool, service.import_company_facts, DOC, ticker=ticker, today=date(2024, 3, 1)
        )
        assert summary["written"] == summary["facts"] > 0 and again["written"] == 0
        assert summary["malformed"] == 2 and summary["data_source"] == "market:sec:companyfacts"
        async with pool.acquire() as conn:
            security = await securities.get_security(conn, ticker)
            assert security is not None
            shares = security[0].shares_outstanding
            early = await service.fundamentals_of(conn, security[0], 50.0, date(2023, 6, 1))
            late = await service.fundamentals_of(conn, security[0], 50.0, date(2024, 3, 1))
            none = await service.fundamentals_of(conn, security[0], 50.0, date(2022, 1, 1))
            stored = await conn.fetchrow(
                "SELECT eps_ttm, equity FROM fundamental_metrics WHERE security_id = $1",
                security_id,
            )
        assert shares == 980_000  # the latest filed count
        assert none is None and early is not None and late is not None
        assert early["equity"] is None and early["eps_ttm"] is None  # one quarter known
        assert late["pe_ratio"] == pytest.approx(reference(DOC, date(2024, 3, 1), 50.0)["pe_ratio"])
        assert late["data_sources"] == ["market:sec:companyfacts"]
        assert tuple(stored) == (pytest.approx(4.6), 44_000_000.0)
    finally:
        await pool.close()


async def test_bourse_market_import_facts_reads_a_directory(
    market_dsn: str, tmp_path: Path
) -> None:
    from bourse.market_facts import import_facts

    pool = await create_pool(market_dsn, schema="market", application_name="facts-cli")
    try:
        async with pool.acquire() as conn:
            ticker, _ = await new_security(conn)
        (tmp_path / "CIK0000000042.json").write_text(json.dumps(DOC))
        (tmp_path / "broken.json").write_text("{not json")
        lines: list[str] = []
        with pytest.raises(ValueError, match="single file"):
            await import_facts(
                tmp_path,
                admin_url="",
                database="",
                environ={"MARKET_DATABASE_URL": market_dsn},
                ticker=ticker,
                report=lines.append,
            )
        imported, skipped = await import_facts(
            tmp_path / "CIK0000000042.json",
            admin_url="",
            database="",
            environ={"MARKET_DATABASE_URL": market_dsn},
            ticker=ticker,
            report=lines.append,
        )
        # Without --ticker the CIK decides: this schema has no security with CIK 42.
        none, skipped_all = await import_facts(
            tmp_path,
            admin_url="",
            database="",
            environ={"MARKET_DATABASE_URL": market_dsn},
            ticker=None,
            report=lines.append,
        )
        assert (imported, skipped, none, skipped_all) == (1, 0, 0, 2)
        assert any(ticker in line and "facts" in line for line in lines)
        async with pool.acquire() as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM fundamental_facts f JOIN securities s USING (security_id)"
                " WHERE s.ticker = $1",
                ticker,
            )
        assert count > 0
    finally:
        await pool.close()

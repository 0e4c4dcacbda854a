"""Use cases on the real database: imports (good and bad files, idempotence, the outbox
event), price history with adjustment, analysis, overview and sectors, the demo seed."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg
import numpy as np
import orjson
import pytest

from services.market import demo, events, schemas
from services.market.domain import calendar
from services.market.errors import InvalidDateRangeError, InvalidImportError, StockNotFoundError
from services.market.importers.providers import ProviderBar
from services.market.service import corporate_actions, imports, loading, stocks
from services.market.service import market as market_service
from services.market.tests.factories import in_request, in_unit, new_security
from shared.messaging import Event

GOOD = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,100,102,99,101,101,1000
2024-01-03,101,103,100,102,102,1100
2024-01-04,102,104,101,103,103,1200
"""

BAD = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-05,10,9,11,10,10,100
2024-01-08,10,11,9,10,10,-5
2024-01-06,10,11,9,10,10,100
2024-01-09,null,11,9,10,10,100
2024-01-10,10,11,9,10,10,100
2024-01-10,10,11,9,10,10,100
not-a-date,10,11,9,10,10,100
2024-01-11,10,11,9
"""


async def _outbox(conn: asyncpg.Connection, session: date) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = 'market.eod.completed'"
        " AND payload->'data'->>'session' = $1",
        session.isoformat(),
    )
    return count


async def test_import_is_idempotent_and_queues_the_eod_event(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ticker, _ = await new_security(conn)
        before = await _outbox(conn, date(2024, 1, 4))
    first = await in_unit(pool, imports.import_csv, GOOD, ticker=ticker, layout="auto")
    assert (first.rows, first.inserted, first.updated, first.unchanged, first.rejected) == (
        3,
        3,
        0,
        0,
        0,
    )
    again = await in_unit(pool, imports.import_csv, GOOD, ticker=ticker, layout="yahoo")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    changed = await in_unit(
        pool,
        imports.import_csv,
        GOOD.replace("101,103,103,", "101,103.5,103,"),
        ticker=ticker,
        layout="auto",
    )
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 2)
    async with pool.acquire() as conn:
        # One event per import that changed something; none for the idempotent one.
        assert await _outbox(conn, date(2024, 1, 4)) == before + 2


async def test_bad_rows_are_rejected_with_reasons_and_never_stored(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ticker, sid = await new_security(conn)
    summary = await in_unit(pool, imports.import_csv, BAD, ticker=ticker, layout="auto")
    assert summary.rows == 8 and summary.inserted == 1 and summary.rejected == 7
    assert summary.rejections == {
        "high_below_low": 1,
        "negative_volume": 1,
        "not_a_session": 1,
        "not_a_number": 1,
        "duplicate_day": 1,
        "bad_date": 1,
        "malformed": 1,
    }
    assert {r.line for r in summary.rejected_rows} == {2, 3, 4, 5, 7, 8, 9}
    async with pool.acquire() as conn:
        days = await conn.fetch("SELECT day FROM daily_bars WHERE security_id = $1", sid)
    assert [r["day"] for r in days] == [date(2024, 1, 10)]


async def test_unknown_tickers_and_bad_files(pool: asyncpg.Pool) -> None:
    summary = await in_unit(pool, imports.import_csv, GOOD, ticker="ZZZZZ", layout="auto")
    assert summary.rejections == {"unknown_ticker": 3} and summary.unknown_tickers == ["ZZZZZ"]
    with pytest.raises(InvalidImportError):
        await in_unit(pool, imports.import_csv, "a,b\n1,2\n", ticker="ACME", layout="auto")
    with pytest.raises(InvalidImportError):
        await in_unit(pool, imports.import_csv, GOOD, ticker="not valid", layout="auto")


async def test_provider_day_goes_through_the_same_path(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ticker, _ = await new_security(conn)

    class Recorded:
        name = "recorded"

        async def grouped_daily(self, day: date) -> list[ProviderBar]:
            return [
                ProviderBar(ticker, day, 20.0, 21.0, 19.5, 20.5, 5000.0),
                ProviderBar("ZZZZZ", day, 1.0, 1.0, 1.0, 1.0, 1.0),
            ]

        async def daily_bars(self, ticker: str, start: date, end: date) -> list[ProviderBar]:
            return []

    summary = await in_unit(pool, imports.import_provider_day, Recorded(), date(2024, 2, 1))
    assert summary.source == "provider:recorded" and summary.inserted == 1
    assert summary.rejections == {"unknown_ticker": 1}


async def test_adjusted_history_applies_a_split_and_a_dividend(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ticker, sid = await new_security(conn)
    csv = "Date,Open,High,Low,Close,Volume\n" + "".join(
        f"{d},{c},{c + 1},{c - 1},{c},1000\n"
        for d, c in (
            ("2024-03-04", 200),
            ("2024-03-05", 202),  # split 2-for-1 effective 2024-03-06
            ("2024-03-06", 102),
            ("2024-03-07", 100),  # dividend 1.00 ex 2024-03-08 (factor 1 - 1/100)
            ("2024-03-08", 99.5),
        )
    )
    await in_unit(pool, imports.import_csv, csv, ticker=ticker, layout="stooq")
    async with pool.acquire() as conn, conn.transaction():
        await corporate_actions.record_actions(
            conn,
            [(sid, date(2024, 3, 6), "split", 2.0), (sid, date(2024, 3, 8), "dividend", 1.0)],
            "test",
        )
        await loading.refresh_derived(conn, since=date(2024, 3, 4))
    raw = await in_request(
        pool,
        stocks.price_history,
        ticker,
        start=date(2024, 3, 1),
        end=date(2024, 3, 31),
        interval="daily",
        adjusted=False,
    )
    adjusted = await in_request(
        pool,
        stocks.price_history,
        ticker,
        start=date(2024, 3, 1),
        end=date(2024, 3, 31),
        interval="daily",
        adjusted=True,
    )
    assert raw.close.tolist() == [200, 202, 102, 100, 99.5]
    np.testing.assert_allclose(adjusted.close, [99.0, 99.99, 100.98, 99.0, 99.5])
    np.testing.assert_allclose(adjusted.volume, [2000, 2000, 1000, 1000, 1000])
    weekly = await in_request(
        pool,
        stocks.price_history,
        ticker,
        start=date(2024, 3, 4),
        end=date(2024, 3, 8),
        interval="weekly",
        adjusted=True,
    )
    assert weekly.close.tolist() == [99.5] and weekly.open.tolist() == pytest.approx(
        [adjusted.open[0]]
    )


async def test_history_errors(pool: asyncpg.Pool) -> None:
    with pytest.raises(StockNotFoundError):
        await in_request(
            pool,
            stocks.price_history,
            "ZZZZ",
            start=date(2024, 1, 1),
            end=date(2024, 2, 1),
            interval="daily",
            adjusted=True,
        )
    with pytest.raises(InvalidDateRangeError):
        stocks.default_range(date(2024, 2, 1), date(2024, 1, 1), date(2024, 3, 1))
    assert stocks.default_range(None, None, date(2024, 3, 1)) == (
        date(2023, 3, 2),
        date(2024, 3, 1),
    )


async def test_analysis_has_every_indicator_with_parameters(pool: asyncpg.Pool) -> None:
    security, live_price, result = await in_request(pool, stocks.analysis, "ACME")
    assert security.ticker == "ACME" and live_price is not None and live_price > 0
    assert set(result["returns"]) == {"1d", "1w", "1m", "3m", "6m", "ytd", "1y"}
    assert all(v is not None for v in result["returns"].values())
    assert [(m["type"], m["period"]) for m in result["moving_averages"]] == [
        ("SMA", 20),
        ("SMA", 50),
        ("SMA", 200),
        ("EMA", 20),
        ("EMA", 50),
        ("EMA", 200),
    ]
    assert all(m["value"] > 0 for m in result["moving_averages"])
    assert 0 <= result["rsi"]["value"] <= 100 and result["rsi"]["period"] == 14
    bb = result["bollinger_bands"]
    assert bb["lower"] < bb["middle"] < bb["upper"] and bb["std_devs"] == 2.0
    assert result["atr"]["value"] > 0 and result["volatility"]["value"] > 0
    assert -1 < result["max_drawdown"]["value"] <= 0
    assert result["beta"]["value"] is not None
    assert result["range_52w"]["low"] <= result["last_close"] <= result["range_52w"]["high"]
    assert 0 <= result["relative_strength"]["universe_percentile"] <= 100
    assert result["average_volume"]["value"] > 0


async def test_overview_and_sectors(pool: asyncpg.Pool) -> None:
    overview = await in_request(pool, market_service.overview)
    breadth = overview["breadth"]
    assert (
        breadth["advancers"] + breadth["decliners"] + breadth["unchanged"] == breadth["total"] > 0
    )
    changes = [m["change_percent"] for m in overview["top_gainers"]]
    assert changes == sorted(changes, reverse=True) and all(c > 0 for c in changes)
    assert all(m["change_percent"] < 0 for m in overview["top_losers"])
    volumes = [m["volume"] for m in overview["most_active"]]
    assert volumes == sorted(volumes, reverse=True)
    assert overview["index"]["level"] > 0
    sectors = (await in_request(pool, market_service.sectors))["sectors"]
    assert len(sectors) == 11
    for sector in sectors:
        assert set(sector["performance_percent"]) == {"1d", "1w", "1m", "3m", "ytd", "1y"}
        assert sector["leaders"] and sector["breadth"]["total"] == sector["securities"]


async def test_quote_snapshot_and_rpc_answers(pool: asyncpg.Pool) -> None:
    import orjson

    from services.market import events

    snapshot = orjson.loads(await in_request(pool, market_service.quote_snapshot))
    assert snapshot["count"] == len(snapshot["quotes"]) >= 40
    assert set(snapshot["quotes"][0]) == set(events.Tick.model_fields)
    reply = await market_service.quotes_reply(pool, ["acme", "ZZZZ", "ACME"])
    assert [q.ticker for q in reply.quotes] == ["ACME"] and reply.missing == ["ZZZZ"]
    end = calendar.last_closed_session(
        __import__("datetime").datetime.now(__import__("datetime").UTC)
    )
    tickers = [q["ticker"] for q in snapshot["quotes"]] + ["ZZZZ"]
    request = events.HistoryRequest(tickers=tickers, start=end - timedelta(days=200), end=end)
    pages, cursor = [], None
    while True:
        page = await market_service.history_reply(
            pool, request.model_copy(update={"cursor": cursor}), budget_bytes=20_000
        )
        assert len(orjson.dumps(page.model_dump(mode="json"))) < 20_000 * 1.6
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    got = [s.ticker for p in pages for s in p.series]
    assert len(pages) > 2 and sorted(got) == sorted(tickers[:-1])
    assert [m for p in pages for m in p.missing] == ["ZZZZ"]


async def test_demo_seed_keeps_an_existing_universe(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM daily_bars")
        await demo.seed_demo(conn)
        assert await conn.fetchval("SELECT count(*) FROM daily_bars") == before


async def test_an_emptied_index_is_rebuilt_from_the_bars_as_it_was(
    fresh_market_pool: asyncpg.Pool,
) -> None:
    # Migration 0004 empties the derived tables; the service rebuilds them at start-up.
    async with fresh_market_pool.acquire() as conn:
        before = await conn.fetch("SELECT * FROM market_index ORDER BY day")
        stats_before = await conn.fetchval("SELECT count(*) FROM security_stats")
        await conn.execute("DELETE FROM market_index; DELETE FROM security_stats")
        await loading.ensure_derived(conn)
        after = await conn.fetch("SELECT * FROM market_index ORDER BY day")
        assert await conn.fetchval("SELECT count(*) FROM security_stats") == stats_before > 0
        await loading.ensure_derived(conn)  # a no-op once the index is there
        assert await conn.fetch("SELECT * FROM market_index ORDER BY day") == after
    assert len(after) == len(before) > 200
    for a, b in zip(after, before, strict=True):
        assert a["day"] == b["day"] and a["constituents"] == b["constituents"]
        assert a["level"] == pytest.approx(b["level"], rel=1e-12)
        assert a["total_return_level"] == pytest.approx(b["total_return_level"], rel=1e-12)


async def test_the_pre_encoded_market_bodies_match_their_declared_models(
    pool: asyncpg.Pool,
) -> None:
    # The routes encode these dicts with orjson, unchecked: the declared models must hold.
    def roundtrip(value: object) -> object:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))

    sectors = schemas.Sectors.model_validate(
        roundtrip(await in_request(pool, market_service.sectors))
    )
    assert sectors.sectors and all(s.equal_weighted_percent for s in sectors.sectors)
    index = schemas.IndexHistory.model_validate(
        roundtrip(await in_request(pool, market_service.index_history, None, None))
    )
    assert len(index.levels) > 400
    schemas.Overview.model_validate(roundtrip(await in_request(pool, market_service.overview)))
    security, live, result = await in_request(pool, stocks.analysis, "ACME")
    analysis = schemas.Analysis.model_validate(
        roundtrip(
            {
                "ticker": security.ticker,
                "name": security.name,
                "sector": security.sector,
                "live_price": live,
                **result,
            }
        )
    )
    assert analysis.sharpe_ratio.model_extra and analysis.history.model_extra


async def _announced(conn: asyncpg.Connection, ticker: str) -> list[dict[str, object]]:
    rows = await conn.fetch(
        "SELECT payload FROM outbox WHERE subject = 'market.actions.recorded' ORDER BY id"
    )
    found = []
    for row in rows:
        event = Event[events.ActionsRecorded].model_validate(row["payload"])
        found += [a.model_dump(mode="json") for a in event.data.actions if a.ticker == ticker]
    return found


async def test_recorded_actions_are_announced_once_each_new_or_changed(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        ticker, sid = await new_security(conn)
        split = (sid, date(2024, 3, 6), "split", 2.0)
        dividend = (sid, date(2024, 3, 8), "dividend", 0.5)
        async with conn.transaction():
            assert await corporate_actions.record_actions(conn, [split, dividend], "test") == 2
        async with conn.transaction():  # the same again: nothing new, nothing announced
            assert await corporate_actions.record_actions(conn, [split, dividend], "test") == 0
        async with conn.transaction():  # one changed value: that one only
            changed = (sid, date(2024, 3, 8), "dividend", 0.75)
            assert await corporate_actions.record_actions(conn, [split, changed], "fix") == 1
        try:
            async with conn.transaction():  # rolled back: neither the action nor its event
                late = (sid, date(2024, 6, 3), "split", 0.1)
                await corporate_actions.record_actions(conn, [late], "test")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert await _announced(conn, ticker) == [
            {"ticker": ticker, "ex_date": "2024-03-06", "kind": "split", "value": 2.0,
             "data_source": "test"},
            {"ticker": ticker, "ex_date": "2024-03-08", "kind": "dividend", "value": 0.5,
             "data_source": "test"},
            {"ticker": ticker, "ex_date": "2024-03-08", "kind": "dividend", "value": 0.75,
             "data_source": "fix"},
        ]  # fmt: skip


async def test_the_universe_load_announces_every_action_in_batches(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT s.ticker, a.ex_date, a.kind, a.value FROM corporate_actions a"
            " JOIN securities s USING (security_id) WHERE a.data_source = 'simulated'"
        )
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE subject = 'market.actions.recorded' ORDER BY id"
        )
    announced = []
    sizes = []
    for row in rows:
        event = Event[events.ActionsRecorded].model_validate(row["payload"])
        if event.data.actions[0].data_source != "simulated":
            continue
        sizes.append(len(event.data.actions))
        announced += [(a.ticker, a.ex_date, a.kind, a.value) for a in event.data.actions]
    assert len(stored) > 0 and sorted(announced) == sorted(tuple(r) for r in stored)
    assert all(1 <= s <= events.MAX_ACTIONS_PER_EVENT for s in sizes)


def test_actions_are_announced_in_batches_of_at_most_500() -> None:
    actions = [
        events.RecordedAction(
            ticker="AAA", ex_date=date(2020, 1, 1) + timedelta(days=i), kind="dividend",
            value=0.1, data_source="test",
        )
        for i in range(1_201)
    ]  # fmt: skip
    batches = events.actions_events(actions)
    assert [len(e.data.actions) for e in batches] == [500, 500, 201]
    assert [(e.data.part, e.data.parts) for e in batches] == [(1, 3), (2, 3), (3, 3)]
    assert [a for e in batches for a in e.data.actions] == actions
    assert len({e.event_id for e in batches}) == 3
    assert events.actions_events([]) == []

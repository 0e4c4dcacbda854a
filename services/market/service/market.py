"""Universe-wide use cases: overview, sectors, quote snapshots, request/reply answers,
the end-of-day completion, and the service's status."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import asyncpg

from services.market import events
from services.market.domain import adjustment as adj
from services.market.domain import overview as ov
from services.market.domain import statistics as st
from services.market.domain.statistics import group_slices
from services.market.repository import actions as actions_repo
from services.market.repository import bars as bars_repo
from services.market.repository import loads, provider_sync, quotes, securities, stats
from services.market.repository.quotes import QuoteRow
from services.market.service.loading import refresh_derived
from shared.messaging import enqueue


def quote_payload(q: QuoteRow) -> dict[str, Any]:
    previous = q.previous_close if q.previous_close else q.price
    change = q.price - previous
    return {
        "ticker": q.ticker,
        "price": round(q.price, 4),
        "previous_close": round(previous, 4),
        "change": round(change, 4),
        "change_percent": round(change / previous * 100.0, 4) if previous else 0.0,
        "volume": q.volume,
        "ts": int(q.updated_at.timestamp() * 1000),
    }


async def quote_snapshot(conn: asyncpg.Connection) -> bytes:
    """Every latest quote as JSON bytes, encoded by the database when the quotes changed
    (``quote_snapshot``): one row read, nothing to encode here."""
    body = await quotes.read_snapshot(conn)
    if body is None:
        await quotes.rebuild_snapshot(conn)
        body = await quotes.read_snapshot(conn)
    return body or b'{"as_of":0,"count":0,"quotes":[]}'


async def quotes_reply(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (a NATS request/reply handler)
    tickers: list[str],
) -> events.QuotesReply:
    wanted = list(dict.fromkeys(t.upper() for t in tickers))
    async with pool.acquire() as conn:  # lint-skip: request-takes-pool (NATS)
        rows = await quotes.quotes_for(conn, wanted)
    found = {q.ticker for q in rows}
    return events.QuotesReply(
        quotes=[events.Tick(**quote_payload(q)) for q in rows],
        missing=[t for t in wanted if t not in found],
    )


async def history_reply(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (a NATS request/reply handler)
    request: events.HistoryRequest,
    *,
    budget_bytes: int,
) -> events.HistoryReply:
    """Closes for the requested tickers, from ``request.cursor`` on, as many series as fit
    in ``budget_bytes`` (at least one)."""
    wanted = list(dict.fromkeys(t.upper() for t in request.tickers))
    start_at = request.cursor or 0
    async with pool.acquire() as conn:  # lint-skip: request-takes-pool (NATS)
        ids = await securities.security_ids(conn, wanted)
        # Read a slice at a time: most replies carry a few hundred series.
        estimate = max(1, budget_bytes // max(1, 14 * ((request.end - request.start).days + 1)))
        page = wanted[start_at : start_at + estimate * 2 + 1]
        page_ids = [ids[t] for t in page if t in ids]
        bars = await bars_repo.bars_for(conn, page_ids, request.start, request.end)
        actions = (
            {i: await actions_repo.actions_for(conn, i) for i in page_ids}
            if request.adjusted
            else {}
        )

    def build() -> events.HistoryReply:
        by_id = dict(group_slices(bars.security_id))
        series: list[events.CloseSeries] = []
        missing: list[str] = []
        size = 64
        next_cursor: int | None = None
        for offset, ticker in enumerate(page):
            sid = ids.get(ticker)
            if sid is None:
                missing.append(ticker)
                continue
            rows = by_id.get(sid)
            days = bars.day[rows] if rows is not None else bars.day[:0]
            close = bars.close[rows] if rows is not None else bars.close[:0]
            if request.adjusted and len(days):
                price_f, _ = adj.factors(days, actions.get(sid, []))
                close = close * price_f
            item = events.CloseSeries(
                ticker=ticker,
                dates=[d.item() for d in days],
                closes=[round(float(c), 6) for c in close],
            )
            item_size = 40 + len(ticker) + 24 * len(days)
            if series and size + item_size > budget_bytes:
                next_cursor = start_at + offset
                break
            series.append(item)
            size += item_size
        else:
            end = start_at + len(page)
            next_cursor = end if end < len(wanted) else None
        return events.HistoryReply(series=series, missing=missing, next_cursor=next_cursor)

    return await asyncio.to_thread(build)


async def _universe(
    conn: asyncpg.Connection,
) -> tuple[ov.UniverseColumns, date | None, float | None]:
    rows = await stats.universe_columns(conn)
    as_of = await stats.latest_stats_day(conn)
    previous = await stats.index_level_before(conn, date.max) if as_of else None
    return rows, as_of, previous[1] if previous else None


async def index_reply(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (a NATS request/reply handler)
    request: events.IndexRequest,
) -> events.IndexReply:
    """The index between ``request.start`` and ``request.end`` (about 30 bytes a session:
    ten years fit in one reply)."""
    async with pool.acquire() as conn:  # lint-skip: request-takes-pool (NATS)
        rows = await stats.index_history(conn, request.start, request.end)
    return events.IndexReply(
        dates=[r[0] for r in rows],
        price_return=[round(r[1], 6) for r in rows],
        total_return=[round(r[2], 6) for r in rows],
    )


async def index_history(
    conn: asyncpg.Connection, start: date | None, end: date | None
) -> dict[str, Any]:
    """The universe index's daily levels (price and total return) from ``start`` to ``end``
    (either open: from the first / to the last stored session)."""
    rows = await stats.index_history(conn, start or date.min, end or date.max)
    return {
        "name": "Bourse universe index",
        "base": st.INDEX_BASE,
        "methodology": st.INDEX_METHODOLOGY,
        "start": start or (rows[0][0] if rows else None),
        "end": end or (rows[-1][0] if rows else None),
        "levels": [
            {
                "date": day,
                "price_return": round(level, 6),
                "total_return": round(total, 6),
                "constituents": n,
            }
            for day, level, total, n in rows
        ],
    }


async def overview(conn: asyncpg.Connection) -> dict[str, Any]:
    rows, as_of, level = await _universe(conn)
    result = await asyncio.to_thread(ov.overview, rows, previous_index_level=level)
    return {"as_of": as_of, **result}


async def sectors(conn: asyncpg.Connection) -> dict[str, Any]:
    rows, as_of, _ = await _universe(conn)
    return {
        "as_of": as_of,
        "methodology": ov.SECTOR_METHODOLOGY,
        "sectors": await asyncio.to_thread(ov.sectors, rows),
    }


async def status(
    conn: asyncpg.Connection,
    *,
    configured_provider: str | None = None,
    next_run_at: datetime | None = None,
) -> dict[str, Any]:
    """The service's state; ``providers``: every provider that has synced or tried to,
    and the configured one (with its next run) even before its first round."""
    load = await loads.latest(conn)
    providers = []
    states = {s.provider: s for s in await provider_sync.states(conn)}
    if configured_provider is not None and configured_provider not in states:
        states[configured_provider] = provider_sync.SyncState(
            configured_provider, None, 0, None, None, None, None
        )
    for name in sorted(states):
        item = states[name]
        configured = name == configured_provider
        providers.append(
            {
                "provider": name,
                "configured": configured,
                "last_session": item.last_session,
                "sessions_synced": item.sessions_synced,
                "last_attempt_at": item.last_attempt_at,
                "last_success_at": item.last_success_at,
                "last_error": item.last_error,
                "last_error_at": item.last_error_at,
                "next_run_at": next_run_at if configured else None,
            }
        )
    return {
        "providers": providers,
        "storage": await bars_repo.storage(conn),
        "securities": await securities.count_securities(conn),
        "universe_load": None
        if load is None
        else {
            "state": load.state,
            "phase": load.phase,
            "rows_loaded": load.rows_loaded,
            "rows_total": load.rows_total,
            "percent": round(100.0 * load.rows_loaded / load.rows_total, 1)
            if load.rows_total
            else None,
            "started_at": load.started_at,
            "finished_at": load.finished_at,
            "error": load.error,
        },
    }


async def complete_eod(
    conn: asyncpg.Connection,
    *,
    session: date,
    inserted: int,
    updated: int,
    securities_count: int,
    source: str,
    since: date | None = None,
) -> None:
    """After bars of ``session`` are stored (in ``conn``'s transaction): refresh derived
    data and queue ``market.eod.completed`` in the same transaction."""
    await refresh_derived(conn, since=since or session, until=session)
    await enqueue(
        conn,
        events.EOD_COMPLETED,
        events.eod_event(
            events.EodCompleted(
                session=session,
                securities=securities_count,
                bars_inserted=inserted,
                bars_updated=updated,
                source=source,
            )
        ),
    )

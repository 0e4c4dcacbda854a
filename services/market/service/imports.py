"""Importing real daily bars: CSV files and end-of-day providers, through one path —
validate every row (rejecting bad ones with a reason), merge the good ones idempotently,
refresh the derived statistics and queue ``market.eod.completed``, in one transaction."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import date

import numpy as np

from services.market.domain import normalise_ticker
from services.market.domain.bars import validate
from services.market.errors import InvalidImportError
from services.market.importers import csv_files
from services.market.importers.providers import EodProvider, ProviderBar
from services.market.repository import bars as bars_repo
from services.market.repository import securities
from services.market.schemas import ImportSummary, RejectedRow
from services.market.service.market import complete_eod
from shared.db.transaction import RequestTransaction

MAX_IMPORT_BYTES = 64 << 20
MAX_REJECTED_SHOWN = 100


@dataclass
class IncomingBars:
    """Rows from any source, before validation (NaN for what did not parse)."""

    source: str
    lines: list[int]
    tickers: list[str]
    days: list[date | None]
    raw_days: list[str]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    malformed: list[tuple[int, str]]


def from_csv(parsed: csv_files.ParsedFile, source: str) -> IncomingBars:
    return IncomingBars(
        source,
        parsed.lines,
        parsed.tickers,
        parsed.days,
        parsed.raw_days,
        parsed.open,
        parsed.high,
        parsed.low,
        parsed.close,
        parsed.volume,
        parsed.malformed,
    )


def from_provider(rows: list[ProviderBar], source: str) -> IncomingBars:
    return IncomingBars(
        source,
        list(range(1, len(rows) + 1)),
        [r.ticker for r in rows],
        [r.day for r in rows],
        [r.day.isoformat() for r in rows],
        [r.open for r in rows],
        [r.high for r in rows],
        [r.low for r in rows],
        [r.close for r in rows],
        [r.volume for r in rows],
        [],
    )


async def import_csv(
    unit: RequestTransaction, text: str, *, ticker: str | None, layout: str
) -> ImportSummary:
    if ticker is not None and normalise_ticker(ticker) is None:
        raise InvalidImportError("The ticker is not a valid symbol.", details={"ticker": ticker})
    try:
        parsed = await asyncio.to_thread(csv_files.parse, text, ticker=ticker, layout=layout)
    except csv_files.CsvLayoutError as exc:
        raise InvalidImportError(str(exc)) from None
    return await import_bars(unit, from_csv(parsed, f"csv:{parsed.layout}"))


async def import_provider_day(
    unit: RequestTransaction, provider: EodProvider, day: date
) -> ImportSummary:
    """The whole market's bars of ``day`` in one provider call, where it has one."""
    rows = await provider.grouped_daily(day)
    return await import_bars(unit, from_provider(rows, f"provider:{provider.name}"))


async def backfill(
    unit: RequestTransaction, provider: EodProvider, tickers: list[str], start: date, end: date
) -> ImportSummary:
    """Each ticker's history from the provider (its own concurrency limit applies)."""
    results = await asyncio.gather(*(provider.daily_bars(t, start, end) for t in tickers))
    rows = [bar for result in results for bar in result]
    return await import_bars(unit, from_provider(rows, f"provider:{provider.name}"))


async def import_bars(
    unit: RequestTransaction, incoming: IncomingBars, *, today: date | None = None
) -> ImportSummary:
    """Validate ``incoming``, merge the good rows and queue ``market.eod.completed`` in
    ``unit``'s transaction; the weekly/monthly aggregates are refreshed once it commits."""
    today = today or date.today()
    conn = await unit.connection()
    known = await securities.security_ids(conn, sorted(set(incoming.tickers)))
    n = len(incoming.lines)
    keys = np.array([known.get(t, -1) for t in incoming.tickers], dtype=np.int64)
    days = np.array(
        [d.isoformat() if d is not None else "NaT" for d in incoming.days], dtype="datetime64[D]"
    )
    check = await asyncio.to_thread(
        validate,
        keys,
        days,
        np.array(incoming.open, dtype=np.float64),
        np.array(incoming.high, dtype=np.float64),
        np.array(incoming.low, dtype=np.float64),
        np.array(incoming.close, dtype=np.float64),
        np.array(incoming.volume, dtype=np.float64),
        today=today,
    )
    reasons: list[str | None] = list(check.reasons)
    for i in range(n):
        if incoming.days[i] is None:
            reasons[i] = "bad_date"
        elif normalise_ticker(incoming.tickers[i]) is None:
            reasons[i] = "invalid_ticker"
        elif keys[i] < 0:
            reasons[i] = "unknown_ticker"
        elif reasons[i] is None and incoming.volume[i] != int(incoming.volume[i]):
            reasons[i] = "fractional_volume"
    ok = np.array([r is None for r in reasons], dtype=bool)
    rejected = [
        RejectedRow(
            line=incoming.lines[i], ticker=incoming.tickers[i], date=incoming.raw_days[i], reason=r
        )
        for i, r in enumerate(reasons)
        if r is not None
    ] + [
        RejectedRow(line=line, ticker=None, date=None, reason="malformed")
        for line, _ in incoming.malformed
    ]
    accepted = bars_repo.BarArrays(
        keys[ok].astype(np.int32),
        days[ok],
        np.array(incoming.open)[ok],
        np.array(incoming.high)[ok],
        np.array(incoming.low)[ok],
        np.array(incoming.close)[ok],
        np.array(incoming.volume)[ok].astype(np.int64),
    )
    inserted = updated = 0
    if len(accepted):
        first = accepted.day.min().item()
        last = accepted.day.max().item()
        counts = await bars_repo.merge(conn, accepted)
        inserted, updated = counts.inserted, counts.updated
        if inserted or updated:
            await complete_eod(
                conn,
                session=last,
                since=first,
                inserted=inserted,
                updated=updated,
                securities_count=len(set(accepted.security_id.tolist())),
                source=incoming.source,
            )
            unit.after_commit_with_connection(
                lambda other: bars_repo.refresh_periods(other, first, last)
            )
    unknown = sorted({incoming.tickers[i] for i in range(n) if reasons[i] == "unknown_ticker"})
    return ImportSummary(
        source=incoming.source,
        rows=n + len(incoming.malformed),
        inserted=inserted,
        updated=updated,
        unchanged=len(accepted) - inserted - updated,
        rejected=len(rejected),
        rejections=dict(Counter(r.reason for r in rejected)),
        rejected_rows=rejected[:MAX_REJECTED_SHOWN],
        unknown_tickers=unknown[:MAX_REJECTED_SHOWN],
    )

"""Subjects and payloads the market service publishes or answers (it owns these schemas).

Core NATS, latest wins (no persistence)::

    market.tick.<TICKER>   Tick: {"ticker", "price", "previous_close", "change",
                           "change_percent", "volume", "ts"} — floats; volume is the day's
                           cumulative volume; ts is epoch milliseconds (UTC) of the tick.
    market.feed.status     FeedStatus: {"state": "running" | "stopped", "interval_seconds",
                           "ts"} — sent by the leading feed every ``interval_seconds`` while
                           it runs, and once when it stops (a lost database, shutdown), so
                           consumers can tell a quiet market from a stopped feed.

JetStream stream ``MARKET`` (through the outbox, ``Nats-Msg-Id = event_id``)::

    market.eod.completed   Event[EodCompleted]: a session's bars are stored and the derived
                           statistics refreshed.
    market.actions.recorded
                           Event[ActionsRecorded]: corporate actions (splits, cash
                           dividends) were written, new or changed, in the same transaction
                           as this event; at most MAX_ACTIONS_PER_EVENT per event (a load
                           of many is several events, ``part`` of ``parts``).

Request/reply (errors come back in the common envelope)::

    market.rpc.quotes      QuotesRequest {"tickers": [...]} → QuotesReply {"quotes": [Quote...],
                           "missing": [...]}; a Quote is a Tick plus the security's sector.
    market.rpc.history     HistoryRequest → HistoryReply, one page at a time: each reply stays
                           under the payload budget (half the server's max_payload); ask again
                           with ``cursor = next_cursor`` until it is null.
    market.rpc.index       IndexRequest {"start", "end"} → IndexReply {"dates",
                           "price_return", "total_return"}: the universe index (the
                           benchmark of betas and excess returns; docs/market.md).
    market.rpc.closes      ClosesRequest {"tickers", "start", "end", "cursor"} → ClosesReply,
                           columnar, for whole-universe inputs: the reply's session
                           calendar once, then per security split- and dividend-adjusted
                           closes and split-adjusted volumes aligned to it (row-major, null:
                           no bar), and the corporate actions in range; paged like history.
    market.rpc.universe    UniverseRequest {"listed_only", "cursor"} → UniverseReply
                           {"securities": [Listing...], "next_cursor"}: every security's
                           ticker, name, exchange, sector, industry, status and data
                           source, by ticker, one page per payload budget; ask again with
                           ``cursor = next_cursor`` until it is null.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared.messaging import Event

SOURCE = "market"
STREAM = "MARKET"
STREAM_SUBJECTS = ["market.eod.>", "market.actions.>"]

TICK_PREFIX = "market.tick."
EOD_COMPLETED = "market.eod.completed"
ACTIONS_RECORDED = "market.actions.recorded"
ACTIONS_RECORDED_VERSION = 1
MAX_ACTIONS_PER_EVENT = 500
RPC_QUOTES = "market.rpc.quotes"
RPC_HISTORY = "market.rpc.history"
FEED_STATUS = "market.feed.status"
RPC_INDEX = "market.rpc.index"
RPC_UNIVERSE = "market.rpc.universe"
RPC_CLOSES = "market.rpc.closes"

MAX_TICKERS_PER_REQUEST = 10_000


def tick_subject(ticker: str) -> str:
    return TICK_PREFIX + ticker


class Tick(BaseModel):
    ticker: str
    price: float
    previous_close: float
    change: float
    change_percent: float
    volume: int
    ts: int


def encode_tick(ticker: str, price: float, previous_close: float, volume: int, ts: int) -> bytes:
    """A tick's JSON bytes, built without a model (the feed's hot path)."""
    change = price - previous_close
    return orjson.dumps(
        {
            "ticker": ticker,
            "price": round(price, 4),
            "previous_close": round(previous_close, 4),
            "change": round(change, 4),
            "change_percent": round(change / previous_close * 100.0, 4) if previous_close else 0.0,
            "volume": int(volume),
            "ts": ts,
        }
    )


class FeedStatus(BaseModel):
    state: Literal["running", "stopped"]
    interval_seconds: float
    ts: int


class QuotesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickers: list[str] = Field(max_length=MAX_TICKERS_PER_REQUEST)


class Quote(Tick):
    """A latest quote as ``market.rpc.quotes`` answers it: the tick and the security's
    sector (ticks themselves carry no sector: they are the feed's hot path)."""

    # A Tick validates as a Quote without a sector.
    model_config = ConfigDict(from_attributes=True)

    sector: str | None = None


class QuotesReply(BaseModel):
    quotes: list[Quote]
    missing: list[str]


class HistoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickers: list[str] = Field(min_length=1, max_length=MAX_TICKERS_PER_REQUEST)
    start: date
    end: date
    adjusted: bool = True
    cursor: int | None = Field(None, ge=0, description="next_cursor of the previous reply")


class CloseSeries(BaseModel):
    ticker: str
    dates: list[date]
    closes: list[float]


class HistoryReply(BaseModel):
    series: list[CloseSeries]
    missing: list[str]
    next_cursor: int | None


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date
    end: date


class IndexReply(BaseModel):
    """Daily levels (base 1000) of the universe index: price return and total return
    (dividends reinvested), split-consistent market-value weights."""

    dates: list[date]
    price_return: list[float]
    total_return: list[float]


class ClosesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickers: list[str] = Field(min_length=1, max_length=MAX_TICKERS_PER_REQUEST)
    start: date
    end: date
    cursor: int | None = Field(None, ge=0, description="next_cursor of the previous reply")


class ActionColumns(BaseModel):
    """Corporate actions with an ex-date in the range, one entry per action in each list."""

    ticker: list[str]
    ex_date: list[date]
    kind: list[str] = Field(description="split or dividend")
    value: list[float] = Field(description="split ratio (new per old share) or cash per share")


class ClosesReply(BaseModel):
    """``closes`` and ``volumes`` are ``len(tickers) x len(sessions)`` matrices flattened
    row by row (one row per ticker); null where the security has no bar that session."""

    sessions: list[date]
    tickers: list[str]
    closes: list[float | None]
    volumes: list[float | None]
    actions: ActionColumns
    missing: list[str] = Field(description="tickers market does not know")
    next_cursor: int | None


class UniverseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listed_only: bool = Field(True, description="leave out delisted securities")
    cursor: str | None = Field(None, description="next_cursor of the previous reply")


class Listing(BaseModel):
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str
    status: str = Field(description="listed or delisted")
    data_source: str = Field(description="simulated, or the import or provider it came from")


class UniverseReply(BaseModel):
    securities: list[Listing]
    next_cursor: str | None


class EodCompleted(BaseModel):
    session: date
    securities: int
    bars_inserted: int
    bars_updated: int
    source: str = Field(description="feed, import or provider")


def eod_event(payload: EodCompleted) -> Event[EodCompleted]:
    return Event[EodCompleted](event_type="market.eod.completed", source=SOURCE, data=payload)


class RecordedAction(BaseModel):
    """One corporate action as market stores it."""

    ticker: str
    ex_date: date
    kind: Literal["split", "dividend"]
    value: float = Field(
        gt=0, description="split: new shares per old share (2.0, 0.1); dividend: cash per share"
    )
    data_source: str = Field(description="simulated, or the import or provider it came from")


class ActionsRecorded(BaseModel):
    """Actions written (new, or with a changed value) in one transaction: ``part`` of
    ``parts`` events that transaction queued, each with at most
    :data:`MAX_ACTIONS_PER_EVENT` actions."""

    actions: list[RecordedAction] = Field(min_length=1, max_length=MAX_ACTIONS_PER_EVENT)
    part: int = Field(ge=1)
    parts: int = Field(ge=1)


def actions_events(actions: list[RecordedAction]) -> list[Event[ActionsRecorded]]:
    """``actions`` as events of at most :data:`MAX_ACTIONS_PER_EVENT` each (none for none)."""
    batches = [
        actions[k : k + MAX_ACTIONS_PER_EVENT]
        for k in range(0, len(actions), MAX_ACTIONS_PER_EVENT)
    ]
    return [
        Event[ActionsRecorded](
            event_type=ACTIONS_RECORDED,
            schema_version=ACTIONS_RECORDED_VERSION,
            source=SOURCE,
            data=ActionsRecorded(actions=batch, part=n, parts=len(batches)),
        )
        for n, batch in enumerate(batches, start=1)
    ]

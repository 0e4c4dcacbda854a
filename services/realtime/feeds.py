"""Our consumer models of what other contexts send us, and the requests we make.

We never import another service's package: these are our own views of the fields we
read (unknown fields are ignored, so publishers may add some). Contract tests in
``tests/test_contract_market_ticks.py`` check them against the publishers' models.

- ``market.tick.<TICKER>`` (core NATS, latest wins): :class:`Tick`.
- ``market.feed.status`` (core NATS): :class:`FeedStatus`, whether the market's feed runs.
- ``market.rpc.quotes``: :class:`QuotesRequest` -> :class:`QuotesReply` (latest quotes).
- ``market.rpc.history``: :class:`HistoryRequest` -> :class:`HistoryReply` (daily closes
  for moving-average rules; one page is plenty for one ticker's few hundred days).
- ``recommendations.run.completed`` (JetStream stream ``RECOMMENDATIONS``):
  ``Event[RunCompleted]``, the changed calls of a run (possibly in several parts).
- ``portfolio.watchlist.changed`` (JetStream stream ``PORTFOLIO``):
  ``Event[WatchlistChanged]``, a watchlist's whole state after a change
  (``tests/test_contract_realtime_portfolio.py``).
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

TICK_SUBJECT_PREFIX = "market.tick."
TICK_WILDCARD = "market.tick.>"  # ``>``: class tickers (BRK.B) span two subject tokens
QUOTES_RPC = "market.rpc.quotes"
HISTORY_RPC = "market.rpc.history"
FEED_STATUS = "market.feed.status"
RUN_COMPLETED = "recommendations.run.completed"
WATCHLIST_CHANGED = "portfolio.watchlist.changed"


def tick_subject(ticker: str) -> str:
    return TICK_SUBJECT_PREFIX + ticker


class Tick(BaseModel):
    """A live price: ``ts`` is epoch milliseconds (UTC)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ticker: str
    price: float
    previous_close: float | None = None
    change: float
    change_percent: float
    volume: int
    ts: int


class FeedStatus(BaseModel):
    """The market feed's ``running`` (every ``interval_seconds``) or ``stopped``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    state: str
    interval_seconds: float = Field(default=2.0, gt=0)


class QuotesRequest(BaseModel):
    tickers: list[str]


class QuotesReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    quotes: list[Tick]
    missing: list[str] = Field(default_factory=list)


class HistoryRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date


class CloseSeries(BaseModel):
    """One ticker's daily closes, oldest first."""

    model_config = ConfigDict(extra="ignore")

    ticker: str
    dates: list[date]
    closes: list[float]


class HistoryReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    series: list[CloseSeries]
    missing: list[str] = Field(default_factory=list)


class ActionChange(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    action: str  # BUY / HOLD / SELL
    previous_action: str | None  # None: the first call on the ticker


class RunCompleted(BaseModel):
    """The data of ``recommendations.run.completed`` as we read it."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    changes: list[ActionChange]


class WatchlistChanged(BaseModel):
    """The data of ``portfolio.watchlist.changed`` as we read it: who owns the list and
    what it holds, at ``version`` (newer versions win; ``deleted``: it is gone)."""

    model_config = ConfigDict(extra="ignore")

    watchlist_id: UUID
    owner_id: str
    name: str
    tickers: list[str]
    version: int
    deleted: bool = False

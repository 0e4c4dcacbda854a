"""The model's inputs, asked of the market context over NATS (never its schema).

Our own models of the fields we read (unknown fields ignored, as for every consumer):

- ``market.eod.completed`` (JetStream stream ``MARKET``): :class:`EodCompleted`, the session
  whose bars are stored. A scheduled run follows each.
- ``market.rpc.universe`` -> :class:`UniverseReply`: the listed securities with their
  sector and data source, page by page (``next_cursor``).
- ``market.rpc.closes`` -> :class:`ClosesReply`: split- and dividend-adjusted closes and
  split-adjusted volumes, columnar (a calendar per reply, then one row per security), and
  the corporate actions in range; paged by reply size. We ask for the universe in chunks,
  several chunks at a time, each followed page by page; each reply becomes one
  :class:`Block` (no object per security).
- ``market.rpc.index`` -> :class:`IndexReply`: the universe index's daily levels; the
  track record's benchmark is its total-return variant (dividends reinvested, as in the
  adjusted closes it is compared with), asked for the panel's dates alongside the history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

from services.recommendations.domain.factors import CorporateAction, Panel
from services.recommendations.domain.inputs import Block, IndexLevels, panel_from_blocks
from services.recommendations.errors import MarketInputsUnavailableError
from shared.messaging import Bus, MessagingUnavailableError

EOD_STREAM = "MARKET"
EOD_COMPLETED = "market.eod.completed"
UNIVERSE_RPC = "market.rpc.universe"
CLOSES_RPC = "market.rpc.closes"
INDEX_RPC = "market.rpc.index"
# A universe of 6,000 securities is two pages; more than this is a bug, not a universe.
MAX_UNIVERSE_PAGES = 1_000


class EodCompleted(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session: date


class UniverseRequest(BaseModel):
    listed_only: bool = True
    cursor: str | None = None


class SecurityInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    sector: str | None = None
    industry: str | None = None
    data_source: str = "unknown"


class UniverseReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    securities: list[SecurityInfo]
    next_cursor: str | None = None


class ClosesRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date
    cursor: int | None = None


class ActionColumns(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: list[str]
    ex_date: list[date]
    kind: list[str]
    value: list[float]


class ClosesReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sessions: list[str]  # ISO dates: parsed in bulk by numpy, not one by one
    tickers: list[str]
    closes: list[float | None]  # len(tickers) x len(sessions), row by row
    volumes: list[float | None]
    actions: ActionColumns
    missing: list[str] = Field(default_factory=list)
    next_cursor: int | None = None


class IndexRequest(BaseModel):
    start: date
    end: date


class IndexReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dates: list[str]  # ISO dates, ascending
    total_return: list[float]  # levels, dividends reinvested


@dataclass
class FetchReport:
    securities: int = 0
    requests: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class MarketInputs:
    """Asks market for a universe and its price history."""

    def __init__(
        self,
        bus: Bus,
        *,
        chunk: int = 500,
        concurrency: int = 4,
        timeout: float = 15.0,
    ) -> None:
        self._bus = bus
        self._chunk = chunk
        self._concurrency = concurrency
        self._timeout = timeout

    async def universe(self) -> list[SecurityInfo]:
        """Every listed security, page by page."""
        out: list[SecurityInfo] = []
        cursor: str | None = None
        for _ in range(MAX_UNIVERSE_PAGES):
            reply = await self._bus.request(
                UNIVERSE_RPC, UniverseRequest(cursor=cursor), UniverseReply, timeout=self._timeout
            )
            out += reply.securities
            if (cursor := reply.next_cursor) is None:
                return out
        raise MarketInputsUnavailableError(f"market's universe ran past {MAX_UNIVERSE_PAGES} pages")

    async def closes(
        self, tickers: Sequence[str], *, start: date, end: date
    ) -> tuple[list[Block], dict[str, tuple[CorporateAction, ...]], int]:
        """Every ticker's adjusted closes and volumes from ``start`` to ``end`` as blocks,
        the corporate actions in range by ticker, and the requests made."""
        gate = asyncio.Semaphore(self._concurrency)
        requests = 0
        actions: dict[str, list[CorporateAction]] = {}

        async def one_chunk(part: list[str]) -> list[Block]:
            nonlocal requests
            out: list[Block] = []
            cursor: int | None = None
            while True:
                async with gate:
                    reply = await self._bus.request(
                        CLOSES_RPC,
                        ClosesRequest(tickers=part, start=start, end=end, cursor=cursor),
                        ClosesReply,
                        timeout=self._timeout,
                    )
                requests += 1
                out.append(Block(reply.sessions, reply.tickers, reply.closes, reply.volumes))
                a = reply.actions
                for ticker, ex_date, kind, value in zip(
                    a.ticker, a.ex_date, a.kind, a.value, strict=True
                ):
                    actions.setdefault(ticker, []).append(CorporateAction(ex_date, kind, value))
                if reply.next_cursor is None:
                    return out
                cursor = reply.next_cursor

        parts = [list(tickers[i : i + self._chunk]) for i in range(0, len(tickers), self._chunk)]
        results = await asyncio.gather(*(one_chunk(p) for p in parts))
        blocks = [b for chunk in results for b in chunk]
        return blocks, {t: tuple(a) for t, a in actions.items()}, requests

    async def index(self, *, start: date, end: date) -> IndexLevels:
        """The total-return index's levels from ``start`` to ``end``."""
        reply = await self._bus.request(
            INDEX_RPC, IndexRequest(start=start, end=end), IndexReply, timeout=self._timeout
        )
        return IndexLevels(reply.dates, reply.total_return)

    async def panel(self, *, end: date, calendar_days: int) -> tuple[Panel, FetchReport]:
        """The universe's panel over ``calendar_days`` up to ``end``."""
        report = FetchReport()
        started = time.perf_counter()
        try:
            universe = await self.universe()
        except MessagingUnavailableError as exc:
            raise MarketInputsUnavailableError(f"market did not answer: {exc}") from exc
        report.seconds["universe"] = round(time.perf_counter() - started, 3)
        if not universe:
            raise MarketInputsUnavailableError("market lists no securities")
        tickers = [s.ticker for s in universe]
        started = time.perf_counter()
        start = end - timedelta(days=calendar_days)
        try:
            (blocks, actions, report.requests), index = await asyncio.gather(
                self.closes(tickers, start=start, end=end), self.index(start=start, end=end)
            )
        except MessagingUnavailableError as exc:
            raise MarketInputsUnavailableError(f"market did not answer: {exc}") from exc
        report.seconds["history"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        sectors = {s.ticker: s.sector for s in universe}
        sources = {s.ticker: (f"market:{s.data_source}",) for s in universe}
        panel = await asyncio.to_thread(
            panel_from_blocks,
            blocks,
            sectors=sectors,
            sources=sources,
            actions=actions,
            benchmark=index,
        )
        report.seconds["assemble"] = round(time.perf_counter() - started, 3)
        report.securities = len(panel.tickers)
        return panel, report

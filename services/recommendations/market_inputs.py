"""The model's inputs, asked of the market context over NATS (never its schema).

Our own models of the fields we read (unknown fields ignored, as for every consumer):

- ``market.eod.completed`` (JetStream stream ``MARKET``): :class:`EodCompleted`, the session
  whose bars are stored. A scheduled run follows each.
- ``market.rpc.universe`` -> :class:`UniverseReply`: the listed securities with their
  sector and data source. **Market does not answer it yet** (see docs/recommendations.md,
  "What market must provide"). Until it does, the universe is the set of tickers seen on
  ``market.tick.>`` over a short window: the simulated feed ticks every listed simulated
  security (and only those), so those calls say ``market:simulated`` and have no sector.
- ``market.rpc.history`` -> :class:`HistoryReply`: adjusted closes, paged by reply size.
  We ask for the universe in chunks, several chunks at a time, each followed page by page.
  It carries no volumes and no corporate actions, so liquidity is "not assessed" and the
  recent-split rule cannot fire until market adds them.
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

from nats.aio.msg import Msg
from pydantic import BaseModel, ConfigDict, Field

from services.recommendations.domain.factors import Panel
from services.recommendations.domain.inputs import IndexLevels, Series, build_panel
from services.recommendations.errors import MarketInputsUnavailableError
from shared.messaging import Bus, MessagingUnavailableError

EOD_STREAM = "MARKET"
EOD_COMPLETED = "market.eod.completed"
UNIVERSE_RPC = "market.rpc.universe"
HISTORY_RPC = "market.rpc.history"
INDEX_RPC = "market.rpc.index"
TICK_WILDCARD = "market.tick.>"
TICK_PREFIX = "market.tick."


class EodCompleted(BaseModel):
    model_config = ConfigDict(extra="ignore")

    session: date


class UniverseRequest(BaseModel):
    listed_only: bool = True


class SecurityInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    sector: str | None = None
    data_source: str = "unknown"


class UniverseReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    securities: list[SecurityInfo]


class HistoryRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date
    adjusted: bool = True
    cursor: int | None = None


class CloseSeries(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    dates: list[str]  # ISO dates: parsed in bulk by numpy, not one by one
    closes: list[float]


class HistoryReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    series: list[CloseSeries]
    missing: list[str] = Field(default_factory=list)
    next_cursor: int | None = None


class IndexRequest(BaseModel):
    start: date
    end: date


class IndexReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dates: list[str]  # ISO dates, ascending
    total_return: list[float]  # levels, dividends reinvested


@dataclass(frozen=True)
class Universe:
    securities: list[SecurityInfo]
    origin: str  # "rpc" or "ticks"


@dataclass
class FetchReport:
    universe_origin: str = ""
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
        tick_quiet_seconds: float = 3.0,
        tick_max_seconds: float = 40.0,
    ) -> None:
        self._bus = bus
        self._chunk = chunk
        self._concurrency = concurrency
        self._timeout = timeout
        self._tick_quiet = tick_quiet_seconds
        self._tick_max = tick_max_seconds

    async def universe(self) -> Universe:
        try:
            reply = await self._bus.request(
                UNIVERSE_RPC, UniverseRequest(), UniverseReply, timeout=self._timeout
            )
            return Universe(reply.securities, "rpc")
        except MessagingUnavailableError:
            pass
        tickers = await self._tickers_on_the_feed()
        return Universe(
            [SecurityInfo(ticker=t, data_source="simulated") for t in sorted(tickers)], "ticks"
        )

    async def _tickers_on_the_feed(self) -> set[str]:
        """Tickers seen on ``market.tick.>`` until none is new for a few seconds."""
        seen: set[str] = set()
        last_new = time.monotonic()
        prefix = self._bus.subject(TICK_PREFIX)

        async def on_tick(msg: Msg) -> None:
            nonlocal last_new
            ticker = msg.subject[len(prefix) :]
            if ticker not in seen:
                seen.add(ticker)
                last_new = time.monotonic()

        sub = await self._bus.client.subscribe(self._bus.subject(TICK_WILDCARD), cb=on_tick)
        started = time.monotonic()
        try:
            while time.monotonic() - started < self._tick_max:
                await asyncio.sleep(0.25)
                if seen and time.monotonic() - last_new > self._tick_quiet:
                    break
                if not seen and time.monotonic() - started > self._tick_quiet * 2:
                    break
        finally:
            await sub.unsubscribe()
        return seen

    async def history(
        self, tickers: Sequence[str], *, start: date, end: date
    ) -> tuple[list[Series], int]:
        """Every ticker's adjusted closes from ``start`` to ``end``, and the requests made."""
        gate = asyncio.Semaphore(self._concurrency)
        requests = 0

        async def one_chunk(part: list[str]) -> list[Series]:
            nonlocal requests
            out: list[Series] = []
            cursor: int | None = None
            while True:
                async with gate:
                    reply = await self._bus.request(
                        HISTORY_RPC,
                        HistoryRequest(tickers=part, start=start, end=end, cursor=cursor),
                        HistoryReply,
                        timeout=self._timeout,
                    )
                requests += 1
                out.extend(Series(s.ticker, s.dates, s.closes) for s in reply.series)
                if reply.next_cursor is None:
                    return out
                cursor = reply.next_cursor

        parts = [list(tickers[i : i + self._chunk]) for i in range(0, len(tickers), self._chunk)]
        results = await asyncio.gather(*(one_chunk(p) for p in parts))
        return [s for chunk in results for s in chunk], requests

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
        report.universe_origin = universe.origin
        report.seconds["universe"] = round(time.perf_counter() - started, 3)
        if not universe.securities:
            raise MarketInputsUnavailableError(
                "market named no securities (no universe RPC answer and no ticks)"
            )
        tickers = [s.ticker for s in universe.securities]
        started = time.perf_counter()
        start = end - timedelta(days=calendar_days)
        try:
            (series, report.requests), index = await asyncio.gather(
                self.history(tickers, start=start, end=end), self.index(start=start, end=end)
            )
        except MessagingUnavailableError as exc:
            raise MarketInputsUnavailableError(f"market did not answer: {exc}") from exc
        report.seconds["history"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        sectors = {s.ticker: s.sector for s in universe.securities}
        sources = {s.ticker: (f"market:{s.data_source}",) for s in universe.securities}
        panel = await asyncio.to_thread(
            build_panel, series, sectors=sectors, sources=sources, benchmark=index
        )
        report.seconds["assemble"] = round(time.perf_counter() - started, 3)
        report.securities = len(panel.tickers)
        return panel, report

"""What we ask the recommendations context over NATS, and our own model of its reply.

``recommendations.rpc.latest`` answers the latest completed live run's call for each ticker
asked (or the whole run, a page at a time). We never import the recommendations package
(its models live in ``services/recommendations/events.py``): these classes are our view of
the fields we read, unknown fields ignored. ``tests/test_contract_portfolio_recommendations.py``
checks them against the publisher's models.

Readers: the risk x-ray (holdings whose latest call is SELL), the "follow the
recommendations" rebalance target, the impact preview and the watchlists (each ticker's
latest call, with its target price and when its run was generated). When recommendations does not
answer, :class:`CallBook` says so (``available=False``) instead of raising: the x-ray
still answers, with that part marked unavailable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import AppError
from shared.messaging import Bus

LATEST_RPC = "recommendations.rpc.latest"
PAGE = 250  # the publisher's most tickers and calls per request/reply
# A whole run is ~6,000 calls: 24 pages. More is a bug (or a cursor that never ends).
MAX_PAGES = 100


class LatestRequest(BaseModel):
    tickers: list[str] | None = None
    cursor: str | None = None
    limit: int = PAGE


class LatestCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    ticker: str
    action: Literal["BUY", "HOLD", "SELL"]
    confidence: float = Field(ge=0, le=1)
    target_price: float | None = None
    price_at_call: float | None = None
    horizon_days: int | None = None
    hypothetical: bool = False


class LatestReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: UUID | None
    as_of: date | None
    generated_at: datetime | None = None
    calls: list[LatestCall]
    missing: list[str] = Field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One ticker's latest call, as we use it."""

    id: UUID
    ticker: str
    action: str  # BUY / HOLD / SELL
    confidence: float
    target_price: float | None = None
    price_at_call: float | None = None
    horizon_days: int | None = None


@dataclass(frozen=True, slots=True)
class CallBook:
    """The latest live run's calls for the tickers asked. ``available`` is False when
    recommendations did not answer (``problem`` says why); ``run_id`` is None when no live
    run has been published yet (then there are no calls)."""

    calls: dict[str, Call] = field(default_factory=dict)
    run_id: UUID | None = None
    as_of: date | None = None
    available: bool = True
    problem: str | None = None
    generated_at: datetime | None = None


def _calls(reply: LatestReply) -> dict[str, Call]:
    # "Latest" is the latest live run: a hypothetical call is never acted on.
    return {
        c.ticker: Call(
            c.id, c.ticker, c.action, c.confidence, c.target_price, c.price_at_call, c.horizon_days
        )
        for c in reply.calls
        if not c.hypothetical
    }


class LatestRecommendations:
    """The latest live run's calls from the recommendations context (request/reply on
    the part's bus)."""

    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self._bus = bus
        self._timeout = timeout

    async def _ask(self, request: LatestRequest) -> LatestReply:
        return await self._bus.request(LATEST_RPC, request, LatestReply, timeout=self._timeout)

    async def latest(self, tickers: Iterable[str]) -> CallBook:
        """Each ticker's call in the latest live run. Never raises for recommendations
        being away (``available=False``)."""
        wanted = sorted(set(tickers))
        if not wanted:
            return CallBook()
        calls: dict[str, Call] = {}
        first: LatestReply | None = None
        try:
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start : start + PAGE]
                cursor: str | None = None
                for _ in range(MAX_PAGES):
                    reply = await self._ask(LatestRequest(tickers=chunk, cursor=cursor))
                    first = first or reply
                    calls.update(_calls(reply))
                    cursor = reply.next_cursor
                    if cursor is None:
                        break
        except AppError as exc:
            return CallBook(available=False, problem=exc.message)
        assert first is not None
        return CallBook(calls, first.run_id, first.as_of, generated_at=first.generated_at)

    async def by_id(self, recommendation_id: UUID) -> tuple[CallBook, Call | None]:
        """The call ``recommendation_id`` if it is one of the latest live run's (walking
        the run a page at a time), with the book it was looked up in."""
        cursor: str | None = None
        reply: LatestReply | None = None
        try:
            for _ in range(MAX_PAGES):
                reply = await self._ask(LatestRequest(tickers=None, cursor=cursor))
                for call in _calls(reply).values():
                    if call.id == recommendation_id:
                        return CallBook({call.ticker: call}, reply.run_id, reply.as_of), call
                cursor = reply.next_cursor
                if cursor is None:
                    break
        except AppError as exc:
            return CallBook(available=False, problem=exc.message), None
        assert reply is not None
        return CallBook({}, reply.run_id, reply.as_of), None

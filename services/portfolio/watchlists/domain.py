"""Watchlists' rules, pure (no I/O): what a change does to a list's ordered tickers, the
limits, and the view of a list at market's quotes and the latest recommendations.

A list keeps its tickers in the user's order, each once. Adding puts a ticker at a given
place (default: the end); removing takes it out; replacing sets the whole list (to
reorder, send the same tickers in the new order). A refused change raises
:class:`WatchlistRejected` with the reason the API reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

MAX_LISTS_PER_USER = 50
MAX_TICKERS_PER_LIST = 100


@dataclass(frozen=True, slots=True)
class Watchlist:
    id: UUID
    owner_id: str
    name: str
    tickers: tuple[str, ...]
    version: int
    created_at: datetime
    updated_at: datetime


class WatchlistRejected(Exception):
    """A change the rules refuse; ``reason`` is the API's error code."""

    def __init__(self, reason: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


def _within_limit(tickers: Sequence[str]) -> None:
    if len(tickers) > MAX_TICKERS_PER_LIST:
        raise WatchlistRejected(
            "WATCHLIST_FULL",
            f"A watchlist holds at most {MAX_TICKERS_PER_LIST} tickers.",
            {"limit": MAX_TICKERS_PER_LIST, "tickers": len(tickers)},
        )


def replaced(tickers: Sequence[str]) -> tuple[str, ...]:
    """The list set to ``tickers``, in that order; a ticker given twice is refused (the
    request is ambiguous about where it goes)."""
    twice = sorted(t for t, n in Counter(tickers).items() if n > 1)
    if twice:
        raise WatchlistRejected(
            "DUPLICATE_TICKER", "A ticker appears more than once.", {"tickers": twice}
        )
    _within_limit(tickers)
    return tuple(tickers)


def added(tickers: Sequence[str], ticker: str, position: int | None = None) -> tuple[str, ...]:
    """``ticker`` inserted before index ``position`` (0: first; None or past the end: last).
    A ticker already listed is refused: where it should go is not the caller's question."""
    if ticker in tickers:
        raise WatchlistRejected(
            "TICKER_ALREADY_LISTED",
            f"{ticker} is already in this watchlist; to move it, send the list in its new order.",
            {"ticker": ticker, "position": tickers.index(ticker)},
        )
    at = len(tickers) if position is None else min(position, len(tickers))
    result = (*tickers[:at], ticker, *tickers[at:])
    _within_limit(result)
    return result


def removed(tickers: Sequence[str], ticker: str) -> tuple[str, ...]:
    if ticker not in tickers:
        raise WatchlistRejected(
            "TICKER_NOT_LISTED", f"{ticker} is not in this watchlist.", {"ticker": ticker}
        )
    return tuple(t for t in tickers if t != ticker)


def new_tickers(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The tickers of ``after`` that ``before`` lacks (the ones market must know)."""
    known = set(before)
    return [t for t in after if t not in known]


@dataclass(frozen=True, slots=True)
class QuoteView:
    price: float
    previous_close: float | None
    change: float | None
    change_percent: float | None
    volume: int | None
    as_of: datetime
    sector: str | None


@dataclass(frozen=True, slots=True)
class CallView:
    id: UUID
    action: str
    confidence: float
    target_price: float | None
    price_at_call: float | None
    horizon_days: int | None
    # The upside to the target at the current price (target / price - 1); None without either.
    upside: float | None


@dataclass(frozen=True, slots=True)
class Line:
    """One ticker of a list as shown: ``status`` is ``quoted`` (market has a quote),
    ``unknown`` (market answered without one: delisted or never traded since it was
    listed) or ``unavailable`` (market did not answer)."""

    ticker: str
    status: str
    quote: QuoteView | None
    recommendation: CallView | None


def lines(
    tickers: Sequence[str],
    quotes: dict[str, QuoteView],
    market_answered: bool,
    calls: dict[str, tuple[UUID, str, float, float | None, float | None, int | None]],
) -> list[Line]:
    """Each ticker in the list's order with its quote and its latest call (a call is
    ``(id, action, confidence, target_price, price_at_call, horizon_days)``)."""
    out: list[Line] = []
    for ticker in tickers:
        quote = quotes.get(ticker)
        status = "quoted" if quote is not None else "unknown" if market_answered else "unavailable"
        call = calls.get(ticker)
        view = None
        if call is not None:
            id_, action, confidence, target, at_call, horizon = call
            upside = (
                target / quote.price - 1
                if target is not None and quote is not None and quote.price > 0
                else None
            )
            view = CallView(id_, action, confidence, target, at_call, horizon, upside)
        out.append(Line(ticker, status, quote, view))
    return out

"""Contract: realtime's model of ``portfolio.watchlist.changed`` parses what portfolio
publishes, and portfolio's watchlist view reads the fields of ``recommendations.rpc.latest``
and ``market.rpc.quotes`` it shows from what their publishers send.

Portfolio owns the watchlist event (``services/portfolio/events.py``); realtime keeps its
own view of the fields it reads (``services/realtime/feeds.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from services.market import events as market
from services.portfolio import events as portfolio_events
from services.portfolio import market as portfolio_market
from services.portfolio import recommendations as portfolio_recommendations
from services.realtime import feeds as realtime
from services.recommendations import events as recommendations
from shared.messaging import Event


def test_realtime_reads_a_watchlist_change_as_portfolio_sends_it() -> None:
    sent = portfolio_events.watchlist_changed(
        portfolio_events.WatchlistChanged(
            watchlist_id=uuid.uuid4(),
            owner_id="user-1",
            name="Tech",
            tickers=["ACME", "BRK.B"],
            version=3,
        )
    )
    assert realtime.WATCHLIST_CHANGED == portfolio_events.WATCHLIST_CHANGED == sent.event_type
    assert realtime.WATCHLIST_CHANGED in portfolio_events.STREAM_SUBJECTS
    parsed = Event[realtime.WatchlistChanged].model_validate_json(sent.model_dump_json())
    assert parsed.event_id == sent.event_id
    data = parsed.data
    assert (data.watchlist_id, data.owner_id, data.tickers, data.version, data.deleted) == (
        sent.data.watchlist_id,
        "user-1",
        ["ACME", "BRK.B"],
        3,
        False,
    )


def test_realtime_reads_a_deletion() -> None:
    sent = portfolio_events.watchlist_changed(
        portfolio_events.WatchlistChanged(
            watchlist_id=uuid.uuid4(),
            owner_id="u",
            name="Gone",
            tickers=[],
            version=7,
            deleted=True,
        )
    )
    parsed = Event[realtime.WatchlistChanged].model_validate_json(sent.model_dump_json())
    assert parsed.data.deleted and parsed.data.tickers == [] and parsed.data.version == 7


def test_the_watchlist_reads_target_and_horizon_of_the_latest_call() -> None:
    call = recommendations.LatestCall(
        id=uuid.uuid4(),
        ticker="ACME",
        action="BUY",
        confidence=0.7,
        score=1.1,
        target_price=212.5,
        price_at_call=187.23,
        horizon_days=20,
        sector="Tech",
        thesis="...",
        risk_factors=[],
        factors=[],
        methodology_disclosure="...",
        data_sources=["market"],
        hypothetical=False,
    )
    generated = datetime(2026, 11, 30, 22, tzinfo=UTC)
    reply = recommendations.LatestReply(
        run_id=uuid.uuid4(),
        as_of=date(2026, 11, 30),
        model_version="v1",
        generated_at=generated,
        calls=[call],
        missing=[],
        next_cursor=None,
    )
    parsed = portfolio_recommendations.LatestReply.model_validate_json(reply.model_dump_json())
    assert parsed.generated_at == generated
    ours = parsed.calls[0]
    assert (ours.target_price, ours.price_at_call, ours.horizon_days) == (212.5, 187.23, 20)


def test_the_watchlist_reads_the_days_change_of_a_quote() -> None:
    quote = market.Quote(
        ticker="ACME",
        price=101.5,
        previous_close=100.0,
        change=1.5,
        change_percent=1.5,
        volume=12345,
        ts=1_764_000_000_000,
        sector="Tech",
    )
    reply = market.QuotesReply(quotes=[quote], missing=["ZZZ"])
    parsed = portfolio_market.QuotesReply.model_validate_json(reply.model_dump_json())
    ours = parsed.quotes[0]
    assert (ours.previous_close, ours.change, ours.change_percent, ours.volume) == (
        100.0,
        1.5,
        1.5,
        12345,
    )
    assert parsed.missing == ["ZZZ"]

"""Contract: the consumers' models of the events portfolio takes part in parse what the
publishers' own models produce, on the publishers' subjects and streams.

- ``market.actions.recorded`` (market, ``services/market/events.py``) -> portfolio
  (``services/portfolio/consumers.py``);
- ``recommendations.run.completed`` (recommendations) -> portfolio;
- ``portfolio.holding.flagged`` (portfolio, ``services/portfolio/events.py``) -> realtime
  (``services/realtime/holding_alerts.py``);
- portfolio's ledger events, which no service consumes yet: their envelopes as sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from services.market import events as market
from services.portfolio import consumers as portfolio_consumers
from services.portfolio import demo
from services.portfolio import events as portfolio
from services.portfolio.domain import Entry, Kind, Portfolio
from services.realtime import holding_alerts
from services.realtime.config import RealtimeSettings
from services.recommendations import events as recommendations
from shared.messaging import Event
from shared.messaging._wire import encode  # what the outbox and the bus put on the wire


def test_portfolio_reads_markets_corporate_actions() -> None:
    assert portfolio_consumers.ACTIONS_RECORDED == market.ACTIONS_RECORDED
    assert portfolio_consumers.MARKET_STREAM == market.STREAM
    assert any(market.ACTIONS_RECORDED.startswith(s[:-1]) for s in market.STREAM_SUBJECTS)
    [sent] = market.actions_events(
        [
            market.RecordedAction(
                ticker="BRK.B", ex_date=date(2024, 6, 3), kind="split", value=1.5,
                data_source="simulated",
            ),
            market.RecordedAction(
                ticker="ACME", ex_date=date(2024, 6, 4), kind="dividend", value=0.24,
                data_source="import:x",
            ),
        ]
    )  # fmt: skip
    received = Event[portfolio_consumers.ActionsRecorded].model_validate_json(encode(sent))
    assert received.event_id == sent.event_id
    assert [(a.ticker, a.ex_date, a.kind, a.value) for a in received.data.actions] == [
        ("BRK.B", date(2024, 6, 3), "split", 1.5),
        ("ACME", date(2024, 6, 4), "dividend", 0.24),
    ]


def test_portfolio_reads_the_calls_whose_action_changed() -> None:
    assert portfolio_consumers.RUN_COMPLETED == recommendations.RUN_COMPLETED
    assert portfolio_consumers.RECOMMENDATIONS_STREAM == recommendations.STREAM
    call = recommendations.ActionChanged(
        recommendation_id=uuid.uuid4(),
        ticker="ACME",
        action="SELL",
        previous_action="HOLD",
        confidence=0.64,
        price_at_call=10.5,
        target_price=None,
    )
    sent = Event[recommendations.RunCompleted](
        event_type=recommendations.RUN_COMPLETED,
        schema_version=recommendations.RUN_COMPLETED_VERSION,
        source=recommendations.SOURCE,
        data=recommendations.RunCompleted(
            run_id=uuid.uuid4(),
            as_of=date(2025, 1, 2),
            model_version="m",
            generated_at=datetime.now(UTC),
            total_recommendations=10,
            part=1,
            parts=1,
            changes=[call],
        ),
    )
    received = Event[portfolio_consumers.RunCompleted].model_validate_json(encode(sent))
    assert received.data.run_id == sent.data.run_id
    [change] = received.data.changes
    assert (change.recommendation_id, change.ticker, change.action) == (
        call.recommendation_id, "ACME", "SELL",
    )  # fmt: skip
    assert (change.previous_action, change.confidence) == ("HOLD", 0.64)


def test_realtime_reads_portfolios_flagged_holdings() -> None:
    assert holding_alerts.HOLDING_FLAGGED == portfolio.HOLDING_FLAGGED
    assert portfolio.HOLDING_FLAGGED in portfolio.STREAM_SUBJECTS
    assert RealtimeSettings.model_fields["portfolio_stream"].default == portfolio.STREAM
    flagged = portfolio.HoldingFlagged(
        owner_id="user-1",
        portfolio_id=uuid.uuid4(),
        portfolio_name="Main",
        ticker="BF-B",
        recommendation_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        previous_action="BUY",
        confidence=0.9,
        quantity=Decimal("12.5"),
        flagged_at=datetime.now(UTC),
    )
    sent = portfolio.flagged(flagged)
    received = Event[holding_alerts.HoldingFlagged].model_validate_json(encode(sent))
    data = received.data
    assert (data.owner_id, data.portfolio_id, data.ticker) == (
        "user-1",
        flagged.portfolio_id,
        "BF-B",
    )
    assert (data.recommendation_id, data.run_id) == (flagged.recommendation_id, flagged.run_id)
    assert (data.confidence, data.quantity, data.previous_action) == (0.9, Decimal("12.5"), "BUY")
    assert "BF-B" in holding_alerts.describe(data) and "90%" in holding_alerts.describe(data)


def test_portfolios_ledger_events_travel_exactly() -> None:
    owner = Portfolio(
        id=uuid.uuid4(), owner_id="u", name="Main", base_currency="USD",
        cash=Decimal("12.3400"), version=7, is_default=True, created_at=datetime.now(UTC),
    )  # fmt: skip
    buy = Entry(
        id=uuid.uuid4(), seq=1, kind=Kind.BUY, executed_at=datetime.now(UTC),
        amount=Decimal("-100.0001"), ticker="ACME", quantity=Decimal("0.3333333333"),
        price=Decimal("300.000300"),
    )  # fmt: skip
    reversal = Entry(
        id=uuid.uuid4(), seq=2, kind=Kind.BUY, executed_at=buy.executed_at,
        amount=Decimal("100.0001"), ticker="ACME", quantity=Decimal("-0.3333333333"),
        price=buy.price, reverses=buy.id,
    )  # fmt: skip
    [recorded] = portfolio.recorded(owner, [buy])
    back = Event[portfolio.TransactionsRecorded].model_validate_json(encode(recorded))
    assert back.data.transactions[0].amount == Decimal("-100.0001")
    assert back.data.transactions[0].quantity == Decimal("0.3333333333")
    assert (back.data.cash, back.data.version) == (Decimal("12.3400"), 7)
    undone = Event[portfolio.TransactionReversed].model_validate_json(
        encode(portfolio.reversed_(owner, reversal))
    )
    assert undone.data.reversed_id == buy.id and undone.data.reversal.reverses == buy.id
    created = Event[portfolio.PortfolioCreated].model_validate_json(
        encode(portfolio.created(owner))
    )
    assert (created.data.portfolio_id, created.data.is_default) == (owner.id, True)
    many = portfolio.recorded(owner, [buy] * (portfolio.MAX_ENTRIES_PER_EVENT + 1))
    assert [(e.data.part, e.data.parts, len(e.data.transactions)) for e in many] == [
        (1, 2, portfolio.MAX_ENTRIES_PER_EVENT), (2, 2, 1),
    ]  # fmt: skip


def test_the_demo_seed_asks_market_in_markets_shape() -> None:
    assert (demo.UNIVERSE_RPC, demo.CLOSES_RPC) == (market.RPC_UNIVERSE, market.RPC_CLOSES)
    asked = market.ClosesRequest.model_validate_json(
        encode(demo.ClosesRequest(tickers=["ACME"], start=date(2024, 1, 1), end=date(2024, 2, 1)))
    )
    assert asked.tickers == ["ACME"] and asked.cursor is None
    assert market.UniverseRequest.model_validate_json(encode(demo.UniverseRequest())).listed_only
    reply = market.ClosesReply(
        sessions=[date(2024, 1, 2)], tickers=["ACME"], closes=[10.0], volumes=[100.0],
        actions=market.ActionColumns(
            ticker=["ACME"], ex_date=[date(2024, 1, 2)], kind=["split"], value=[0.1]
        ),
        missing=[], next_cursor=3,
    )  # fmt: skip
    parsed = demo.ClosesReply.model_validate_json(encode(reply))
    assert parsed.actions.kind == ["split"] and parsed.actions.value == [0.1]
    assert parsed.next_cursor == 3
    listing = market.Listing(
        ticker="ACME", name="Acme", exchange="NYSE", sector="Industrials", industry="Tools",
        status="listed", data_source="simulated",
    )  # fmt: skip
    universe = demo.UniverseReply.model_validate_json(
        encode(market.UniverseReply(securities=[listing], next_cursor=None))
    )
    assert [(s.ticker, s.sector) for s in universe.securities] == [("ACME", "Industrials")]

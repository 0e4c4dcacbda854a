"""Portfolio's events, in process on the real PostgreSQL and NATS: what each change queues
in the outbox, market's splits applied to the holders (once), SELL calls flagging the
holdings (once). The consumers' handlers are called as JetStream would call them (the
delivery itself is in tests/test_portfolio_events_flow.py, across the processes)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.portfolio import events
from services.portfolio.consumers import (
    ActionsRecorded,
    EventConsumer,
    MarketAction,
    RunCompleted,
)
from services.portfolio.domain import actions as corporate
from services.portfolio.tests.support import ledger_rows, post, ticker
from shared.messaging import Delivered, Event
from tests.inprocess import InProcessApp

_DELIVERED = Delivered(
    subject="test", request_id="test", headers={}, num_delivered=1, stream_sequence=1
)


def _consumer(app: InProcessApp, durable: str) -> EventConsumer[Any]:
    found: list[EventConsumer[Any]] = [
        c for c in app.app.state.event_consumers if c._durable == durable
    ]
    return found[0]


async def _outbox(app: InProcessApp, subject: str, portfolio_id: str) -> list[dict[str, Any]]:
    async with app.app.state.resources.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE subject = $1"
            " AND payload->'data'->>'portfolio_id' = $2 ORDER BY id",
            subject,
            portfolio_id,
        )
    return [dict(row["payload"]) for row in rows]


async def _record(app: InProcessApp, caller: dict[str, str], body: dict[str, Any]) -> str:
    response = await post(app, "/api/v1/portfolio/transactions", body, caller)
    assert response.status_code == 201, response.text
    transaction_id: str = response.json()["transaction"]["id"]
    return transaction_id


async def _entry(app: InProcessApp, caller: dict[str, str], kind: str, **fields: Any) -> str:
    """Record a ``kind`` entry; ``on`` (a date) becomes its ``executed_at`` (15:00 UTC)."""
    on = fields.pop("on", None)
    if on is not None:
        fields["executed_at"] = _at(on)
    return await _record(app, caller, {"kind": kind, **fields})


def _at(day: date) -> str:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=15).isoformat()


# --- what changes publish ---------------------------------------------------------------


async def test_changes_queue_their_events_in_the_outbox(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    created = await portfolio.client.post(
        "/api/v1/portfolio", json={"name": "Main", "cash": "500"}, headers=caller
    )
    pid = created.json()["id"]
    [made] = await _outbox(portfolio, events.PORTFOLIO_CREATED, pid)
    assert Event[events.PortfolioCreated].model_validate(made).data.name == "Main"
    name = ticker()
    buy = await _record(
        portfolio,
        caller,
        {"kind": "BUY", "ticker": name, "quantity": "2", "price": "100.5", "fee": "1"},
    )
    reversed_ = await post(
        portfolio, f"/api/v1/portfolios/{pid}/transactions/{buy}/reversal", {}, caller
    )
    assert reversed_.status_code == 201, reversed_.text
    recorded = [
        Event[events.TransactionsRecorded].model_validate(p)
        for p in await _outbox(portfolio, events.TRANSACTIONS_RECORDED, pid)
    ]
    assert [[t.kind for t in e.data.transactions] for e in recorded] == [["DEPOSIT"], ["BUY"]]
    trade = recorded[1].data.transactions[0]
    assert (trade.id, trade.amount, trade.quantity) == (
        uuid.UUID(buy),
        Decimal("-202.0000"),
        Decimal(2),
    )
    assert recorded[1].data.cash == Decimal("298.0000") and recorded[1].data.owner_id
    [reversal] = [
        Event[events.TransactionReversed].model_validate(p)
        for p in await _outbox(portfolio, events.TRANSACTION_REVERSED, pid)
    ]
    assert reversal.data.reversed_id == uuid.UUID(buy)
    assert reversal.data.cash == Decimal("500.0000")
    assert reversal.data.version == recorded[1].data.version + 1


async def test_a_refused_change_queues_nothing(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()["id"]
    before = await _outbox(portfolio, events.TRANSACTIONS_RECORDED, pid)
    refused = await post(
        portfolio,
        "/api/v1/portfolio/transactions",
        {"kind": "BUY", "ticker": ticker(), "quantity": "1", "price": "10"},
        caller,
    )
    assert refused.status_code == 409
    assert await _outbox(portfolio, events.TRANSACTIONS_RECORDED, pid) == before


# --- market's splits ------------------------------------------------------------------


async def _actions(app: InProcessApp, *actions: MarketAction, event_id: uuid.UUID) -> None:
    event = Event[ActionsRecorded](
        event_id=event_id,
        event_type="market.actions.recorded",
        source="market",
        data=ActionsRecorded(actions=list(actions)),
    )
    await _consumer(app, "portfolio-corporate-actions").handle(event, _DELIVERED)


async def _valuation(app: InProcessApp, caller: dict[str, str]) -> dict[str, Any]:
    response = await app.client.get("/api/v1/portfolio", headers=caller)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_split_applies_to_holders_once_and_keeps_cost_basis(
    portfolio: InProcessApp,
) -> None:
    name, other = ticker(), ticker()
    ex = date.today() - timedelta(days=30)
    holder, late, stranger = portfolio.token(), portfolio.token(), portfolio.token()
    for caller in (holder, late, stranger):
        await _record(
            portfolio,
            caller,
            {"kind": "DEPOSIT", "amount": "10000", "executed_at": _at(ex - timedelta(days=60))},
        )
    await _entry(
        portfolio,
        holder,
        "BUY",
        ticker=name,
        quantity="3",
        price="100",
        fee="1",
        on=ex - timedelta(days=50),
    )
    await _entry(
        portfolio,
        holder,
        "BUY",
        ticker=name,
        quantity="1.5",
        price="120",
        on=ex - timedelta(days=10),
    )
    # Opened after the ex-date: bought post-split shares, no split for it.
    await _entry(
        portfolio, late, "BUY", ticker=name, quantity="4", price="55", on=ex + timedelta(days=1)
    )
    await _entry(
        portfolio,
        stranger,
        "BUY",
        ticker=other,
        quantity="4",
        price="55",
        on=ex - timedelta(days=10),
    )
    before = await _valuation(portfolio, holder)
    late_before = await _valuation(portfolio, late)
    split = MarketAction(ticker=name, ex_date=ex, kind="split", value=2.0)
    dividend = MarketAction(ticker=name, ex_date=ex, kind="dividend", value=0.5)
    first = uuid.uuid4()
    await _actions(portfolio, split, dividend, event_id=first)
    await _actions(portfolio, split, dividend, event_id=first)  # redelivered
    await _actions(portfolio, split, event_id=uuid.uuid4())  # announced again
    after = await _valuation(portfolio, holder)
    [position_before], [position] = before["positions"], after["positions"]
    assert Decimal(position["quantity"]) == 2 * Decimal(position_before["quantity"]) == 9
    assert [Decimal(lot["quantity"]) for lot in position["lots"]] == [6, 3]
    assert [lot["cost"] for lot in position["lots"]] == [
        lot["cost"] for lot in position_before["lots"]
    ]
    assert position["cost_basis"] == position_before["cost_basis"]
    assert after["cash"] == before["cash"] and after["dividends"] == before["dividends"]
    splits = [r for r in await ledger_rows(portfolio, holder) if r["kind"] == "SPLIT"]
    assert [(r["ticker"], r["split_to"], r["split_from"]) for r in splits] == [(name, 2, 1)]
    assert splits[0]["executed_at"].startswith(ex.isoformat())
    # The late buyer and the holder of another ticker are untouched.
    assert (await _valuation(portfolio, late))["positions"] == late_before["positions"]
    assert not [r for r in await ledger_rows(portfolio, stranger) if r["kind"] == "SPLIT"]
    announced = await _outbox(portfolio, events.TRANSACTIONS_RECORDED, after["id"])
    assert [e["data"]["transactions"][0]["kind"] for e in announced][-1] == "SPLIT"


async def test_a_split_recorded_by_hand_is_not_doubled(portfolio: InProcessApp) -> None:
    name = ticker()
    ex = date.today() - timedelta(days=20)
    caller = portfolio.token()
    await _entry(portfolio, caller, "DEPOSIT", amount="1000", on=ex - timedelta(days=9))
    await _entry(
        portfolio, caller, "BUY", ticker=name, quantity="10", price="50", on=ex - timedelta(days=8)
    )
    await _entry(portfolio, caller, "SPLIT", ticker=name, split_to=1, split_from=10, on=ex)
    await _actions(
        portfolio,
        MarketAction(ticker=name, ex_date=ex, kind="split", value=0.1),
        event_id=uuid.uuid4(),
    )
    [position] = (await _valuation(portfolio, caller))["positions"]
    assert Decimal(position["quantity"]) == 1
    assert len([r for r in await ledger_rows(portfolio, caller) if r["kind"] == "SPLIT"]) == 1


async def test_a_position_closed_before_the_ex_date_is_not_split(portfolio: InProcessApp) -> None:
    name = ticker()
    ex = date.today() - timedelta(days=20)
    caller = portfolio.token()
    await _entry(portfolio, caller, "DEPOSIT", amount="1000", on=ex - timedelta(days=9))
    await _entry(
        portfolio, caller, "BUY", ticker=name, quantity="10", price="50", on=ex - timedelta(days=8)
    )
    await _entry(
        portfolio, caller, "SELL", ticker=name, quantity="10", price="51", on=ex - timedelta(days=2)
    )
    await _actions(
        portfolio,
        MarketAction(ticker=name, ex_date=ex, kind="split", value=3.0),
        event_id=uuid.uuid4(),
    )
    assert not [r for r in await ledger_rows(portfolio, caller) if r["kind"] == "SPLIT"]


def test_split_ratios_from_market_values() -> None:
    assert corporate.split_ratio(2.0) == (2, 1)
    assert corporate.split_ratio(0.1) == (1, 10)
    assert corporate.split_ratio(1.5) == (3, 2)
    assert corporate.split_ratio(10.0) == (10, 1)
    assert corporate.split_ratio(1 / 3) == (1, 3)


# --- SELL flags -------------------------------------------------------------------------


def _run(*changes: dict[str, Any]) -> Event[RunCompleted]:
    return Event[RunCompleted](
        event_type="recommendations.run.completed",
        source="recommendations",
        data=RunCompleted.model_validate({"run_id": uuid.uuid4(), "changes": list(changes)}),
    )


def _call(name: str, action: str, previous: str | None = "HOLD") -> dict[str, Any]:
    return {
        "recommendation_id": str(uuid.uuid4()),
        "ticker": name,
        "action": action,
        "previous_action": previous,
        "confidence": 0.8,
    }


async def test_a_call_turning_sell_flags_each_holding_once(portfolio: InProcessApp) -> None:
    name, other = ticker(), ticker()
    holder, seller = portfolio.token(), portfolio.token()
    for caller in (holder, seller):
        await _record(portfolio, caller, {"kind": "DEPOSIT", "amount": "1000"})
        await _entry(portfolio, caller, "BUY", ticker=name, quantity="2", price="10")
    await _entry(portfolio, seller, "SELL", ticker=name, quantity="2", price="11")
    call = _call(name, "SELL")
    run = _run(call, _call(other, "SELL"))
    flags = _consumer(portfolio, "portfolio-sell-flags")
    await flags.handle(run, _DELIVERED)
    await flags.handle(run, _DELIVERED)  # redelivered
    held = await _valuation(portfolio, holder)
    [position] = held["positions"]
    assert position["sell_flag"]["recommendation_id"] == call["recommendation_id"]
    assert position["sell_flag"]["run_id"] == str(run.data.run_id)
    raised = [
        Event[events.HoldingFlagged].model_validate(p)
        for p in await _outbox(portfolio, events.HOLDING_FLAGGED, held["id"])
    ]
    assert [(e.data.ticker, e.data.quantity, e.data.confidence) for e in raised] == [
        (name, Decimal(2), 0.8)
    ]
    sold = await _valuation(portfolio, seller)
    assert await _outbox(portfolio, events.HOLDING_FLAGGED, sold["id"]) == []
    # The next call on the ticker is no longer SELL: the flag clears.
    await flags.handle(_run(_call(name, "HOLD", "SELL")), _DELIVERED)
    assert (await _valuation(portfolio, holder))["positions"][0]["sell_flag"] is None

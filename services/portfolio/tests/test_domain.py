"""The ledger's rules on hand-computed cases (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.portfolio.domain import (
    Entry,
    Kind,
    LedgerRejected,
    Quote,
    check_reversible,
    if_match_versions,
    replay,
    reversal_of,
    trade_amount,
    value,
)

T0 = datetime(2025, 1, 2, 15, 30, tzinfo=UTC)
D = Decimal


class Book:
    """Builds entries in time order."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, kind: Kind, amount: str = "0", **fields: object) -> Entry:
        entry = Entry(
            id=uuid.uuid4(),
            seq=len(self.entries) + 1,
            kind=kind,
            executed_at=fields.pop("at", T0 + timedelta(days=len(self.entries))),  # type: ignore[arg-type]
            amount=D(amount),
            **fields,  # type: ignore[arg-type]
        )
        self.entries.append(entry)
        return entry

    def trade(self, kind: Kind, ticker: str, quantity: str, price: str, fee: str = "0") -> Entry:
        q, p, f = D(quantity), D(price), D(fee)
        return self.add(
            kind,
            str(trade_amount(kind, q, p, f)),
            ticker=ticker,
            quantity=q,
            price=p,
            fee=f,
        )


def test_a_trades_cash_is_rounded_half_even_to_four_places() -> None:
    assert trade_amount(Kind.BUY, D("3"), D("0.33335"), D("0")) == D("-1.0000")  # 1.00005
    assert trade_amount(Kind.BUY, D("3"), D("0.33345"), D("0")) == D("-1.0004")  # 1.00035
    assert trade_amount(Kind.SELL, D("2"), D("10"), D("1.5")) == D("18.5")


def test_fifo_partial_sales_never_lose_cost_to_rounding() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "100")
    book.trade(Kind.BUY, "AAA", "3", "3.3333", fee="0.0001")  # cost 10.0000
    book.trade(Kind.SELL, "AAA", "1", "4")
    first = replay(book.entries).positions["AAA"]
    assert first.cost_basis == D("6.6667") and first.realised_pnl == D("4") - D("3.3333")
    book.trade(Kind.SELL, "AAA", "2", "4")
    done = replay(book.entries).positions["AAA"]
    assert done.quantity == 0 and done.cost_basis == 0
    assert done.realised_pnl == D("12") - D("10")  # all of the cost, exactly


def test_fifo_takes_the_oldest_lot_first() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "1000")
    book.trade(Kind.BUY, "AAA", "10", "10")
    book.trade(Kind.BUY, "AAA", "10", "20")
    book.trade(Kind.SELL, "AAA", "12", "25")
    position = replay(book.entries).positions["AAA"]
    assert position.realised_pnl == D("300") - D("100") - D("40")
    assert [(lot.quantity, lot.cost) for lot in position.lots] == [(D("8"), D("160"))]
    assert position.average_cost == D("20")


def test_overdraft_and_oversell_are_refused_with_their_reason() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "10")
    book.trade(Kind.BUY, "AAA", "1", "10.0001")
    with pytest.raises(LedgerRejected) as cash:
        replay(book.entries)
    assert cash.value.reason == "INSUFFICIENT_CASH"
    book.entries.pop()
    book.trade(Kind.BUY, "AAA", "1", "10")
    book.trade(Kind.SELL, "AAA", "1.0000000001", "10")
    with pytest.raises(LedgerRejected) as held:
        replay(book.entries)
    assert held.value.reason == "INSUFFICIENT_QUANTITY"


def test_a_sell_fee_beyond_proceeds_cannot_overdraw() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "1")
    book.trade(Kind.BUY, "AAA", "1", "1")
    book.trade(Kind.SELL, "AAA", "1", "0", fee="0.5")
    with pytest.raises(LedgerRejected) as refused:
        replay(book.entries)
    assert refused.value.reason == "INSUFFICIENT_CASH"


def test_a_reverse_split_rounds_shares_down_and_keeps_cost() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "100")
    book.trade(Kind.BUY, "AAA", "10", "9")
    book.add(Kind.SPLIT, ticker="AAA", split_to=1, split_from=3)
    position = replay(book.entries).positions["AAA"]
    assert position.quantity == D("3.3333333333") and position.cost_basis == D("90")
    assert position.average_cost == D("27.000000")


def test_a_split_without_a_position_is_refused() -> None:
    book = Book()
    book.add(Kind.SPLIT, ticker="AAA", split_to=2, split_from=1)
    with pytest.raises(LedgerRejected) as refused:
        replay(book.entries)
    assert refused.value.reason == "NO_POSITION"


def test_a_reversal_removes_the_entry_from_the_replay() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "100")
    buy = book.trade(Kind.BUY, "AAA", "2", "10")
    reversal = reversal_of(buy, entry_id=uuid.uuid4(), seq=99, note=None)
    assert reversal.amount == D("20") and reversal.quantity == D("-2")
    ledger = replay([*book.entries, reversal])
    assert ledger.cash == D("100") and ledger.open_positions() == []
    with pytest.raises(LedgerRejected) as again:
        check_reversible([*book.entries, reversal], buy)
    assert again.value.reason == "ALREADY_REVERSED"
    with pytest.raises(LedgerRejected) as of_reversal:
        check_reversible([*book.entries, reversal], reversal)
    assert of_reversal.value.reason == "NOT_REVERSIBLE"


def test_dividends_and_fees_move_cash_and_are_reported() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "100")
    book.trade(Kind.BUY, "AAA", "1", "50")
    book.add(Kind.DIVIDEND, "0.75", ticker="AAA")
    book.add(Kind.FEE, "-2")
    book.add(Kind.WITHDRAWAL, "-10")
    ledger = replay(book.entries)
    assert ledger.cash == D("38.75") and ledger.dividends == D("0.75")
    assert (ledger.deposits, ledger.withdrawals, ledger.fees) == (D("100"), D("10"), D("2"))


def test_valuation_weights_sectors_and_freshness() -> None:
    book = Book()
    book.add(Kind.DEPOSIT, "1000")
    book.trade(Kind.BUY, "AAA", "10", "30")
    book.trade(Kind.BUY, "BBB", "5", "20")
    book.trade(Kind.BUY, "CCC", "1", "100")
    early, late = T0, T0 + timedelta(minutes=5)
    quotes = {
        "AAA": Quote(D("40"), late, "Tech"),
        "BBB": Quote(D("20"), early, None),
    }
    valued = value(replay(book.entries), quotes)
    # cash 1000 - 300 - 100 - 100 = 500; AAA 400, BBB 100, CCC unpriced.
    assert valued.total_value == D("1000") and valued.market_value == D("500")
    weights = {v.position.ticker: v.weight for v in valued.positions}
    assert weights == {"AAA": D("0.4"), "BBB": D("0.1"), "CCC": None}
    assert valued.sectors == {"Tech": D("0.4"), "UNCLASSIFIED": D("0.1")}
    assert valued.cash_weight == D("0.5") and valued.unpriced == ["CCC"]
    assert valued.unrealised_pnl == D("100") and valued.prices_as_of == early


def test_if_match_parsing() -> None:
    assert if_match_versions("*") is None
    assert if_match_versions('"v3", "v4"') == {3, 4}
    assert if_match_versions('W/"v3"') == set()
    assert if_match_versions("v3") == set()

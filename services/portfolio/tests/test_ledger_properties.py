"""Property tests of the ledger (hypothesis): for random sequences of transactions --
valid or not, back-dated, reversed -- the domain's replay accepts exactly what an
independent recomputation accepts, and agrees with it to the last decimal on cash,
quantities, cost basis, realised P&L and dividends. Cash is never negative, and a
split keeps cost basis and value.

The model below is written separately from ``domain.py`` on purpose (lists of
[quantity, cost] pairs, one pass, no shared helpers); only the documented rounding rules
are shared, because they are the contract.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.portfolio.domain import (
    Entry,
    Kind,
    LedgerRejected,
    extend,
    replay,
    reversal_of,
    trade_amount,
)

TICKERS = ("AAA", "BBB", "CCC")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
CENT4 = Decimal("0.0001")
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(Decimal(low), Decimal(high), places=places, allow_nan=False)


# --- the independent model ------------------------------------------------------------------


@dataclass
class Model:
    cash: Decimal = Decimal(0)
    lots: dict[str, list[list[Decimal]]] = field(default_factory=lambda: defaultdict(list))
    realised: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    dividends: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def held(self, ticker: str) -> Decimal:
        return sum((q for q, _ in self.lots[ticker]), Decimal(0))


def recompute(entries: list[Entry]) -> Model | str:
    """The model's state, or the reason the first bad entry is refused."""
    cancelled = {e.reverses for e in entries if e.reverses} | {e.id for e in entries if e.reverses}
    live = sorted(
        (e for e in entries if e.id not in cancelled), key=lambda e: (e.executed_at, e.seq)
    )
    m = Model()
    for e in live:
        t = e.ticker or ""
        if e.kind == Kind.BUY:
            assert e.quantity is not None and e.price is not None
            cost = (e.quantity * e.price).quantize(CENT4, ROUND_HALF_EVEN) + e.fee
            m.lots[t].append([e.quantity, cost])
            m.cash -= cost
        elif e.kind == Kind.SELL:
            assert e.quantity is not None and e.price is not None
            if e.quantity > m.held(t):
                return "INSUFFICIENT_QUANTITY"
            proceeds = (e.quantity * e.price).quantize(CENT4, ROUND_HALF_EVEN) - e.fee
            left, basis = e.quantity, Decimal(0)
            while left:
                lot = m.lots[t][0]
                take = min(left, lot[0])
                if take == lot[0]:
                    basis += lot[1]
                    m.lots[t].pop(0)
                else:
                    share = (lot[1] * take / lot[0]).quantize(CENT4, ROUND_HALF_EVEN)
                    basis += share
                    lot[0] -= take
                    lot[1] -= share
                left -= take
            m.realised[t] += proceeds - basis
            m.cash += proceeds
        elif e.kind == Kind.SPLIT:
            if m.held(t) == 0:
                return "NO_POSITION"
            assert e.split_to and e.split_from
            for lot in m.lots[t]:
                lot[0] = (lot[0] * e.split_to / e.split_from).quantize(Decimal("1E-10"), ROUND_DOWN)
            m.lots[t] = [lot for lot in m.lots[t] if lot[0] > 0]
        else:
            if e.kind == Kind.DIVIDEND:
                m.dividends[t] += e.amount
            m.cash += e.amount  # DEPOSIT, WITHDRAWAL, FEE, DIVIDEND: the signed amount
        if m.cash < 0:
            return "INSUFFICIENT_CASH"
    return m


# --- random ledgers -----------------------------------------------------------------------


class Builder:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def entry(self, kind: Kind, day: int, amount: Decimal, **fields: object) -> Entry:
        return Entry(
            id=uuid.uuid4(),
            seq=len(self.entries) + 1,
            kind=kind,
            executed_at=T0 + timedelta(days=day),
            amount=amount,
            **fields,  # type: ignore[arg-type]
        )


@st.composite
def ledgers(draw: st.DrawFn, steps: int = 40) -> tuple[list[Entry], int]:
    """A ledger built by proposing random entries and keeping the ones the model accepts
    (after checking that the domain refuses the others for the same reason)."""
    b = Builder()
    refused = 0
    for _ in range(draw(st.integers(1, steps))):
        # Mostly forward in time; sometimes back-dated among earlier entries.
        day = draw(st.integers(0, 2 * len(b.entries) + 1))
        kind = draw(st.sampled_from([*Kind, "REVERSAL"]))
        ticker = draw(st.sampled_from(TICKERS))
        if kind == "REVERSAL":
            candidates = [
                e
                for e in b.entries
                if e.reverses is None and all(x.reverses != e.id for x in b.entries)
            ]
            if not candidates:
                continue
            target = draw(st.sampled_from(candidates))
            new = reversal_of(target, entry_id=uuid.uuid4(), seq=len(b.entries) + 1, note=None)
        elif kind in (Kind.BUY, Kind.SELL):
            quantity = draw(
                st.one_of(decimals("0.0000000001", "50", 10), st.integers(1, 100).map(Decimal))
            )
            if kind == Kind.SELL and draw(st.booleans()):
                # Sell a part of what is held now, so sells usually succeed.
                model = recompute(b.entries)
                held = model.held(ticker) if isinstance(model, Model) else Decimal(0)
                fraction = draw(st.sampled_from(["1", "0.5", "0.3333333333", "0.1"]))
                quantity = (held * Decimal(fraction)).quantize(Decimal("1E-10"), ROUND_DOWN)
                if quantity <= 0:
                    continue
            price = draw(decimals("0", "500", 6))
            fee = draw(st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("1.2345")]))
            gross = (quantity * price).quantize(CENT4, ROUND_HALF_EVEN)
            amount = -(gross + fee) if kind == Kind.BUY else gross - fee
            new = b.entry(kind, day, amount, ticker=ticker, quantity=quantity, price=price, fee=fee)
        elif kind == Kind.SPLIT:
            to, frm = draw(st.integers(1, 10)), draw(st.integers(1, 10))
            new = b.entry(kind, day, Decimal(0), ticker=ticker, split_to=to, split_from=frm)
        else:
            size = draw(decimals("0.0001", "20000", 4))
            sign = 1 if kind in (Kind.DEPOSIT, Kind.DIVIDEND) else -1
            new = b.entry(kind, day, sign * size, ticker=ticker if kind == Kind.DIVIDEND else None)
        expected = recompute([*b.entries, new])
        if isinstance(expected, str):
            refused += 1
            try:
                replay([*b.entries, new])
            except LedgerRejected as exc:
                assert exc.reason == expected, (exc.reason, expected)
            else:
                raise AssertionError(f"the domain accepted what the model refuses: {expected}")
        else:
            b.entries.append(new)
    return b.entries, refused


# --- properties ---------------------------------------------------------------------------


@PROPERTY
@given(ledgers())
def test_replay_equals_an_independent_recomputation(built: tuple[list[Entry], int]) -> None:
    entries, refused = built
    event("some proposals refused" if refused else "every proposal accepted")
    event("with reversals" if any(e.reverses for e in entries) else "no reversal")
    ledger = replay(entries)
    model = recompute(entries)
    assert isinstance(model, Model)
    assert ledger.cash == model.cash and ledger.cash >= 0
    for ticker in TICKERS:
        position = ledger.positions.get(ticker)
        lots = [[lot.quantity, lot.cost] for lot in position.lots] if position else []
        assert lots == model.lots[ticker]
        assert (position.realised_pnl if position else 0) == model.realised[ticker]
        assert (position.dividends if position else 0) == model.dividends[ticker]


@PROPERTY
@given(ledgers())
def test_cash_is_the_sum_of_the_live_amounts_and_never_negative(
    built: tuple[list[Entry], int],
) -> None:
    entries, _ = built
    cancelled = {e.reverses for e in entries if e.reverses} | {e.id for e in entries if e.reverses}
    live = sorted(
        (e for e in entries if e.id not in cancelled), key=lambda e: (e.executed_at, e.seq)
    )
    running = Decimal(0)
    for e in live:  # at every point in time, not only at the end
        running += e.amount
        assert running >= 0
    assert replay(entries).cash == running


@PROPERTY
@given(ledgers())
def test_cost_is_conserved_through_sales(built: tuple[list[Entry], int]) -> None:
    """What was paid for a ticker is what is still held at cost plus the cost of what
    was sold (sale proceeds minus realised P&L): FIFO rounding never loses a cent."""
    entries, _ = built
    ledger = replay(entries)
    cancelled = {e.reverses for e in entries if e.reverses} | {e.id for e in entries if e.reverses}
    for ticker, position in ledger.positions.items():
        mine = [e for e in entries if e.ticker == ticker and e.id not in cancelled]
        paid = sum((-e.amount for e in mine if e.kind == Kind.BUY), Decimal(0))
        proceeds = sum((e.amount for e in mine if e.kind == Kind.SELL), Decimal(0))
        assert paid == position.cost_basis + proceeds - position.realised_pnl


@PROPERTY
@given(
    ledgers(),
    st.sampled_from(TICKERS),
    st.integers(1, 20),
    st.integers(1, 20),
)
def test_a_split_keeps_cost_basis_and_value(
    built: tuple[list[Entry], int], ticker: str, to: int, frm: int
) -> None:
    entries, _ = built
    before = replay(entries).positions.get(ticker)
    if before is None or before.quantity == 0:
        return
    split = Entry(
        id=uuid.uuid4(),
        seq=10_000,
        kind=Kind.SPLIT,
        executed_at=T0 + timedelta(days=10_000),
        amount=Decimal(0),
        ticker=ticker,
        split_to=to,
        split_from=frm,
    )
    after = replay([*entries, split]).positions[ticker]
    if not after.lots:
        # A reverse split left less than the smallest quantity: the cost is realised.
        assert after.realised_pnl == before.realised_pnl - before.cost_basis
        return
    assert after.cost_basis == before.cost_basis
    # The price moves by the inverse ratio (price x from / to), so value is kept iff
    # shares x to / from are; compared multiplied out, in exact integers of decimals.
    # Each lot rounds down by less than 1e-10 of a share.
    shortfall = before.quantity * to - after.quantity * frm
    assert 0 <= shortfall < len(before.lots) * Decimal("1E-10") * frm
    if frm == 1:
        assert shortfall == 0  # a whole-number split is exact


@PROPERTY
@given(ledgers(), st.data())
def test_extending_a_state_equals_replaying_everything(
    built: tuple[list[Entry], int], data: st.DataObject
) -> None:
    """What the in-memory states rely on: appending an entry after the last one to a
    replayed state gives what a replay of the whole ledger gives -- or the same refusal."""
    entries, _ = built
    state = replay(entries)
    before = (
        state.cash,
        {t: [(lot.quantity, lot.cost) for lot in p.lots] for t, p in state.positions.items()},
    )
    last = max((e.executed_at for e in entries), default=T0)
    kind = data.draw(
        st.sampled_from([Kind.BUY, Kind.SELL, Kind.WITHDRAWAL, Kind.SPLIT, Kind.DIVIDEND])
    )
    ticker = data.draw(st.sampled_from(TICKERS))
    quantity = data.draw(decimals("0.0000000001", "40", 10))
    price = data.draw(decimals("0", "300", 6))
    amounts = {
        Kind.BUY: trade_amount(Kind.BUY, quantity, price, Decimal(0)),
        Kind.SELL: trade_amount(Kind.SELL, quantity, price, Decimal(0)),
        Kind.WITHDRAWAL: -quantity.quantize(CENT4),
        Kind.SPLIT: Decimal(0),
        Kind.DIVIDEND: quantity.quantize(CENT4),
    }
    new = Entry(
        id=uuid.uuid4(),
        seq=10_000,
        kind=kind,
        executed_at=last + timedelta(hours=data.draw(st.integers(0, 48))),
        amount=amounts[kind],
        ticker=None if kind is Kind.WITHDRAWAL else ticker,
        quantity=quantity if kind in (Kind.BUY, Kind.SELL) else None,
        price=price if kind in (Kind.BUY, Kind.SELL) else None,
        split_to=3 if kind is Kind.SPLIT else None,
        split_from=2 if kind is Kind.SPLIT else None,
    )
    try:
        expected = replay([*entries, new])
    except LedgerRejected as refused:
        try:
            extend(state, new)
        except LedgerRejected as also:
            assert also.reason == refused.reason
        else:
            raise AssertionError("extend accepted what replay refuses") from None
    else:
        extended = extend(state, new)
        assert extended is not None
        assert extended.cash == expected.cash
        for t in TICKERS:
            got, want = extended.positions.get(t), expected.positions.get(t)
            assert (
                (got is None) == (want is None)
                or (got and got.quantity == 0)
                or (want and want.quantity == 0)
            )
            if got and want:
                assert [(lot.quantity, lot.cost) for lot in got.lots] == [
                    (lot.quantity, lot.cost) for lot in want.lots
                ]
                assert (got.realised_pnl, got.dividends) == (want.realised_pnl, want.dividends)
    # The state it started from is unchanged (states are shared between requests).
    assert (
        state.cash,
        {t: [(lot.quantity, lot.cost) for lot in p.lots] for t, p in state.positions.items()},
    ) == before

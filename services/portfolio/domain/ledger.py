"""The ledger's rules, positions derived from it, valuation. Pure: no I/O.

The ledger is the truth; everything else is a replay of it. :func:`replay` walks the
active entries (those neither reversed nor reversing) in execution order and refuses the
first one that would make cash negative or sell more than is held, so "is this ledger
valid?" and "what does it hold?" are the same computation.

Money and quantities are ``Decimal``, never float. Rounding rules (docs/portfolio.md):

- money (cash, amounts, fees, costs, values, P&L): 4 decimal places, half-even;
- a trade's cash amount is ``quantity x price`` rounded to money, then the fee applied
  (BUY: ``-(gross + fee)``, SELL: ``gross - fee``); the rounded amount is stored in the
  row and is what every figure is derived from, so a recomputation is exact;
- quantities: 10 decimal places; a split rounds each lot's new quantity *down* (the
  fraction a broker pays out as cash in lieu is not invented), its cost is unchanged;
- a partial sale of a lot removes ``cost x sold / held`` (money rounding) and leaves the
  rest, so a lot's cost is never lost or created by rounding;
- prices: 6 decimal places; average cost: 6 decimal places; weights: fractions with 6
  decimal places, half-even.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from uuid import UUID

MONEY = Decimal("0.0001")
QUANTITY = Decimal("0.0000000001")
PRICE = Decimal("0.000001")
WEIGHT = Decimal("0.000001")
ZERO = Decimal(0)


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def price(value: Decimal) -> Decimal:
    return value.quantize(PRICE, rounding=ROUND_HALF_EVEN)


class Kind(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    DIVIDEND = "DIVIDEND"
    FEE = "FEE"
    SPLIT = "SPLIT"


TRADES = frozenset({Kind.BUY, Kind.SELL})


@dataclass(frozen=True)
class Portfolio:
    id: UUID
    owner_id: str
    name: str
    base_currency: str
    cash: Decimal
    version: int
    is_default: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row. ``amount`` is its signed effect on cash (in > 0 > out); a SPLIT
    gives ``split_to`` new shares for every ``split_from`` held and moves no cash. A
    reversing entry names the entry it cancels in ``reverses``."""

    id: UUID
    seq: int
    kind: Kind
    executed_at: datetime
    amount: Decimal
    ticker: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal = ZERO
    split_to: int | None = None
    split_from: int | None = None
    reverses: UUID | None = None
    note: str | None = None


class LedgerRejected(Exception):
    """An entry the ledger refuses; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


def trade_amount(kind: Kind, quantity: Decimal, unit_price: Decimal, fee: Decimal) -> Decimal:
    """The signed cash amount of a BUY or SELL (see the module's rounding rules)."""
    gross = money(quantity * unit_price)
    return -(gross + fee) if kind is Kind.BUY else gross - fee


@dataclass(slots=True)
class Lot:
    """A FIFO tax lot: what one BUY still holds and what it cost (fees included)."""

    opened_at: datetime
    entry_id: UUID
    quantity: Decimal
    cost: Decimal


@dataclass(slots=True)
class Position:
    ticker: str
    lots: list[Lot] = field(default_factory=list)
    realised_pnl: Decimal = ZERO
    dividends: Decimal = ZERO
    fees: Decimal = ZERO  # trade fees paid on this ticker (in cost or in proceeds)

    @property
    def quantity(self) -> Decimal:
        return sum((lot.quantity for lot in self.lots), ZERO)

    @property
    def cost_basis(self) -> Decimal:
        return sum((lot.cost for lot in self.lots), ZERO)

    @property
    def average_cost(self) -> Decimal | None:
        quantity = self.quantity
        return price(self.cost_basis / quantity) if quantity else None


@dataclass(slots=True)
class Ledger:
    """What the active ledger entries add up to."""

    cash: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO
    fees: Decimal = ZERO  # FEE entries (account fees), not trade fees
    entries: int = 0
    last_at: datetime | None = None  # the latest active entry's time

    def fork(self, ticker: str | None) -> Ledger:
        """A copy that :func:`apply` may change without changing this one, for an entry
        on ``ticker``: positions are shared except that one, which is copied deeply."""
        positions = dict(self.positions)
        if ticker is not None and ticker in positions:
            old = positions[ticker]
            positions[ticker] = Position(
                old.ticker,
                [Lot(lot.opened_at, lot.entry_id, lot.quantity, lot.cost) for lot in old.lots],
                old.realised_pnl,
                old.dividends,
                old.fees,
            )
        return Ledger(
            self.cash,
            positions,
            self.deposits,
            self.withdrawals,
            self.fees,
            self.entries,
            self.last_at,
        )

    def open_positions(self) -> list[Position]:
        return sorted((p for p in self.positions.values() if p.quantity > 0), key=_ticker)

    @property
    def realised_pnl(self) -> Decimal:
        return sum((p.realised_pnl for p in self.positions.values()), ZERO)

    @property
    def dividends(self) -> Decimal:
        return sum((p.dividends for p in self.positions.values()), ZERO)


def _ticker(position: Position) -> str:
    return position.ticker


def ordered(entries: Iterable[Entry]) -> list[Entry]:
    """Execution order: by time, then by the order they were written."""
    return sorted(entries, key=lambda e: (e.executed_at, e.seq))


def active(entries: Iterable[Entry]) -> list[Entry]:
    """The entries that count: neither reversed nor reversing."""
    entries = list(entries)
    reversed_ids = {e.reverses for e in entries if e.reverses is not None}
    return [e for e in entries if e.reverses is None and e.id not in reversed_ids]


def replay(entries: Iterable[Entry]) -> Ledger:
    """The state the ledger's active entries produce, in execution order.

    Raises :class:`LedgerRejected` at the first entry that would overdraw cash or sell
    (or split) what is not held."""
    ledger = Ledger()
    for entry in ordered(active(entries)):
        apply(ledger, entry)
    return ledger


def apply(ledger: Ledger, entry: Entry) -> None:
    """Apply one entry to ``ledger`` in place (or raise, leaving it unusable)."""
    kind = entry.kind
    ledger.entries += 1
    if ledger.last_at is None or entry.executed_at > ledger.last_at:
        ledger.last_at = entry.executed_at
    if kind is Kind.SPLIT:
        _split(ledger, entry)
        return
    if kind in TRADES or kind is Kind.DIVIDEND:
        assert entry.ticker is not None
        position = ledger.positions.get(entry.ticker)
        if position is None:
            position = ledger.positions[entry.ticker] = Position(entry.ticker)
        if kind is Kind.BUY:
            assert entry.quantity is not None
            position.lots.append(Lot(entry.executed_at, entry.id, entry.quantity, -entry.amount))
            position.fees += entry.fee
        elif kind is Kind.SELL:
            assert entry.quantity is not None
            removed = _take_fifo(position, entry.quantity, entry)
            position.realised_pnl += entry.amount - removed
            position.fees += entry.fee
        else:
            position.dividends += entry.amount
    elif kind is Kind.DEPOSIT:
        ledger.deposits += entry.amount
    elif kind is Kind.WITHDRAWAL:
        ledger.withdrawals -= entry.amount
    elif kind is Kind.FEE:
        ledger.fees -= entry.amount
    ledger.cash += entry.amount
    if ledger.cash < 0:
        raise LedgerRejected(
            "INSUFFICIENT_CASH",
            f"Not enough cash: this {kind.value} needs {-entry.amount} and only"
            f" {ledger.cash - entry.amount} is available at {entry.executed_at.isoformat()}.",
            needed=str(-entry.amount),
            available=str(ledger.cash - entry.amount),
            entry_id=str(entry.id),
        )


def _take_fifo(position: Position, quantity: Decimal, entry: Entry) -> Decimal:
    """Remove ``quantity`` from the oldest lots first; the cost removed."""
    held = position.quantity
    if quantity > held:
        raise LedgerRejected(
            "INSUFFICIENT_QUANTITY",
            f"Cannot sell {quantity} {position.ticker}: only {held} held at"
            f" {entry.executed_at.isoformat()}.",
            ticker=position.ticker,
            requested=str(quantity),
            held=str(held),
            entry_id=str(entry.id),
        )
    removed = ZERO
    remaining = quantity
    while remaining > 0:
        lot = position.lots[0]
        if lot.quantity <= remaining:
            removed += lot.cost
            remaining -= lot.quantity
            position.lots.pop(0)
        else:
            part = money(lot.cost * remaining / lot.quantity)
            lot.cost -= part
            lot.quantity -= remaining
            removed += part
            remaining = ZERO
    return removed


def _split(ledger: Ledger, entry: Entry) -> None:
    assert entry.ticker is not None and entry.split_to and entry.split_from
    position = ledger.positions.get(entry.ticker)
    if position is None or position.quantity == 0:
        raise LedgerRejected(
            "NO_POSITION",
            f"No {entry.ticker} held at {entry.executed_at.isoformat()} to split.",
            ticker=entry.ticker,
        )
    kept: list[Lot] = []
    orphaned_cost = ZERO
    for lot in position.lots:
        lot.quantity = (lot.quantity * entry.split_to / entry.split_from).quantize(
            QUANTITY, rounding=ROUND_DOWN
        )
        if lot.quantity > 0:
            lot.cost += orphaned_cost  # a lot rounded to nothing earlier: its cost stays
            orphaned_cost = ZERO
            kept.append(lot)
        else:
            orphaned_cost += lot.cost
    if orphaned_cost:
        if kept:
            # A lot rounded down to no shares keeps its cost in the position: carried by
            # the lot before it (or after it), so the split leaves cost basis unchanged.
            kept[-1].cost += orphaned_cost
        else:
            # Nothing is left to carry it: the shares are gone and so is their cost.
            position.realised_pnl -= orphaned_cost
    position.lots = kept


def extend(ledger: Ledger, entry: Entry) -> Ledger | None:
    """``ledger`` with ``entry`` applied after its last entry, without replaying it: the
    same result as :func:`replay` of everything plus ``entry`` when ``entry`` is neither
    a reversal nor earlier than the ledger's last entry. None when it is (replay then).
    Raises :class:`LedgerRejected` like :func:`replay`; ``ledger`` is never changed."""
    if entry.reverses is not None:
        return None
    if ledger.last_at is not None and entry.executed_at < ledger.last_at:
        return None
    extended = ledger.fork(entry.ticker)
    apply(extended, entry)
    return extended


def reversal_of(original: Entry, *, entry_id: UUID, seq: int, note: str | None) -> Entry:
    """The entry that cancels ``original``: same kind, opposite signs, naming it. The
    ledger stays append-only; :func:`active` drops both from the replay."""
    return Entry(
        id=entry_id,
        seq=seq,
        kind=original.kind,
        executed_at=original.executed_at,
        amount=-original.amount,
        ticker=original.ticker,
        quantity=-original.quantity if original.quantity is not None else None,
        price=original.price,
        fee=-original.fee,
        split_to=original.split_to,
        split_from=original.split_from,
        reverses=original.id,
        note=note,
    )


def check_reversible(entries: Sequence[Entry], target: Entry) -> None:
    if target.reverses is not None:
        raise LedgerRejected(
            "NOT_REVERSIBLE",
            "A reversing entry cannot itself be reversed; record the entry again instead.",
            entry_id=str(target.id),
        )
    if any(e.reverses == target.id for e in entries):
        raise LedgerRejected(
            "ALREADY_REVERSED",
            "This entry has already been reversed.",
            entry_id=str(target.id),
        )


# --- valuation ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote:
    price: Decimal
    as_of: datetime
    sector: str | None = None


@dataclass(frozen=True, slots=True)
class ValuedPosition:
    position: Position
    quantity: Decimal  # the position's, computed once
    cost_basis: Decimal
    quote: Quote | None
    market_value: Decimal | None
    unrealised_pnl: Decimal | None
    weight: Decimal | None


@dataclass(frozen=True, slots=True)
class Valuation:
    positions: list[ValuedPosition]
    cash: Decimal
    market_value: Decimal  # priced positions only
    total_value: Decimal  # cash + market_value
    cost_basis: Decimal
    unrealised_pnl: Decimal  # priced positions only
    realised_pnl: Decimal
    dividends: Decimal
    cash_weight: Decimal | None
    sectors: dict[str, Decimal]  # sector -> weight; unknown sectors as "UNCLASSIFIED"
    unpriced: list[str]
    prices_as_of: datetime | None  # the oldest quote used: every price is at least this fresh


def _weight(part: Decimal, total: Decimal) -> Decimal | None:
    return (part / total).quantize(WEIGHT, rounding=ROUND_HALF_EVEN) if total > 0 else None


def value(ledger: Ledger, quotes: Mapping[str, Quote]) -> Valuation:
    """The ledger's open positions at ``quotes``. A position without a quote keeps its
    cost and P&L but has no value or weight, and is named in ``unpriced``."""
    open_positions = ledger.open_positions()
    values: list[tuple[Position, Quote | None, Decimal | None]] = []
    for position in open_positions:
        quote = quotes.get(position.ticker)
        values.append((position, quote, money(position.quantity * quote.price) if quote else None))
    market_value = sum((v for _, _, v in values if v is not None), ZERO)
    total = ledger.cash + market_value
    valued = []
    for position, quote, mv in values:
        cost = position.cost_basis
        valued.append(
            ValuedPosition(
                position=position,
                quantity=position.quantity,
                cost_basis=cost,
                quote=quote,
                market_value=mv,
                unrealised_pnl=mv - cost if mv is not None else None,
                weight=_weight(mv, total) if mv is not None else None,
            )
        )
    by_sector: dict[str, Decimal] = {}
    for _, quote, mv in values:
        if mv is not None and quote is not None:
            sector = quote.sector or "UNCLASSIFIED"
            by_sector[sector] = by_sector.get(sector, ZERO) + mv
    sectors = {s: w for s, v in sorted(by_sector.items()) if (w := _weight(v, total)) is not None}
    priced_quotes = [q for _, q, _ in values if q is not None]
    return Valuation(
        positions=valued,
        cash=ledger.cash,
        market_value=market_value,
        total_value=total,
        cost_basis=sum((v.cost_basis for v in valued), ZERO),
        unrealised_pnl=sum((v.unrealised_pnl or ZERO for v in valued), ZERO),
        realised_pnl=ledger.realised_pnl,
        dividends=ledger.dividends,
        cash_weight=_weight(ledger.cash, total),
        sectors=sectors,
        unpriced=[p.ticker for p, q, _ in values if q is None],
        prices_as_of=min((q.as_of for q in priced_quotes), default=None),
    )


# --- optimistic concurrency -----------------------------------------------------------


def etag(version: int) -> str:
    """The portfolio's entity tag: its ledger version (strong: If-Match compares exactly)."""
    return f'"v{version}"'


def if_match_versions(header: str) -> set[int] | None:
    """The versions an ``If-Match`` header accepts; None for ``*`` (any). Weak tags and
    tags that are not ours match nothing (RFC 9110: If-Match compares strongly)."""
    header = header.strip()
    if header == "*":
        return None
    versions: set[int] = set()
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith('"v') and tag.endswith('"') and tag[2:-1].isdigit():
            versions.add(int(tag[2:-1]))
    return versions

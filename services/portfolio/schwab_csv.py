"""Charles Schwab's brokerage "Transactions" CSV export read as ledger entries. Pure: no
I/O (the file's records in, each row's entry or verdict out).

The layout, as Schwab's site exports it (Accounts > History > Export, CSV): one header

    "Date","Action","Symbol","Description","Quantity","Price","Fees & Comm","Amount"

optionally preceded by a title line (``"Transactions  for account ... as of ..."``, older
exports) and followed by a ``"Transactions Total"`` line; rows newest first; dates
``MM/DD/YYYY``, or ``MM/DD/YYYY as of MM/DD/YYYY`` when the effective date differs (the
"as of" date is taken); money as ``$1,234.56`` / ``-$1,234.56``; quantities with
thousands separators. Which actions become which entries, and why the others are not
imported, is in docs/portfolio.md ("Schwab's export").

Amounts: ``Amount`` is the cash that moved, and it is what the ledger books, so the
imported cash equals the statement's. A trade's ``Amount`` may differ by cents from
``Quantity x Price`` and ``Fees & Comm`` (Schwab shows prices to 2-4 places and rounds
cash to cents); within that rounding, the difference goes into the entry's fee (the
ledger's rule ``amount = -(quantity x price + fee)`` then holds exactly), or, where that
would make the fee negative, into the price (the effective price the holder paid or got).
Beyond it the row is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from services.portfolio.domain import Entry, Kind, trade_amount
from services.portfolio.domain.ledger import PRICE, ZERO, money

HEADER = ("date", "action", "symbol", "description", "quantity", "price", "fees & comm", "amount")

TRADES = {"Buy": Kind.BUY, "Sell": Kind.SELL, "Reinvest Shares": Kind.BUY}
DIVIDENDS = frozenset(
    {
        "Cash Dividend",
        "Qualified Dividend",
        "Non-Qualified Div",
        "Special Dividend",
        "Special Qual Div",
        "Special Non Qual Div",
        "Pr Yr Cash Div",
        "Pr Yr Non-Qual Div",
        "Pr Yr Div Reinvest",
        "Reinvest Dividend",
        "Qual Div Reinvest",
        "Long Term Cap Gain",
        "Short Term Cap Gain",
        "Long Term Cap Gain Reinvest",
        "Short Term Cap Gain Reinvest",
    }
)
TRANSFERS = frozenset(
    {
        "MoneyLink Transfer",
        "MoneyLink Deposit",
        "Wire Funds",
        "Wire Funds Received",
        "Wire Received",
        "Wire Sent",
        "Funds Received",
        "Internal Transfer",
        "Journal",
    }
)
CHARGES = frozenset(
    {
        "Service Fee",
        "Advisor Fee",
        "ADR Mgmt Fee",
        "Margin Interest",
        "Foreign Tax Paid",
        "NRA Tax Adj",
    }
)
# Actions read and deliberately not imported, with the reason the report gives.
NOT_IMPORTED = {
    **dict.fromkeys(
        ("Stock Split", "Reverse Split"),
        "splits are applied from market's corporate actions, not from the file",
    ),
    **dict.fromkeys(
        ("Credit Interest", "Bank Interest", "Bond Interest"),
        "the ledger has no interest kind (as a DEPOSIT it would count as money put in)",
    ),
    **dict.fromkeys(
        (
            "Journaled Shares",
            "Security Transfer",
            "Stock Merger",
            "Spin-off",
            "Name Change",
            "Conversion",
            "Stock Div Dist",
            "Cash In Lieu",
        ),
        "a share movement without a trade price: add the position by hand",
    ),
}
TOTAL_LINE = "transactions total"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row's entry, or why it has none: ``error`` (the row is wrong), ``unsupported``
    (a real action the ledger does not take), ``skipped`` (not a transaction)."""

    entry: Entry | None = None
    error: str | None = None
    unsupported: str | None = None
    skipped: str | None = None


def is_header(cells: Sequence[str]) -> bool:
    return tuple(c.strip().lower() for c in cells) == HEADER


def _money(raw: str, name: str, places: int = 6) -> Decimal | None:
    text = raw.strip().replace(",", "")
    if not text:
        return None
    negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
    text = text.strip("-()").removeprefix("$")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} is not an amount: {raw!r}") from None
    if not value.is_finite() or abs(value) >= Decimal(10) ** 14:
        raise ValueError(f"{name} is not an amount: {raw!r}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise ValueError(f"{name} has more than {places} decimal places")
    return -value if negative else value


def _day(raw: str, now: datetime) -> datetime:
    text = raw.strip()
    # "07/15/2024 as of 07/12/2024": the second date is when it took effect.
    text = text.split(" as of ")[-1].strip()
    try:
        day = datetime.strptime(text, "%m/%d/%Y").date()
    except ValueError:
        raise ValueError(f"Date is not MM/DD/YYYY: {raw!r}") from None
    value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if value > now:
        raise ValueError("Date is in the future")
    return value


def _quantity(raw: str) -> Decimal:
    text = raw.strip().replace(",", "")
    try:
        value = abs(Decimal(text))
    except InvalidOperation:
        raise ValueError(f"Quantity is not a number: {raw!r}") from None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int) or -exponent > 10:
        raise ValueError(f"Quantity is not a number with at most 10 decimal places: {raw!r}")
    if value == 0 or value >= Decimal(10) ** 14:
        raise ValueError("Quantity must be more than 0")
    return value


def _ticker(raw: str) -> str:
    # A share class as Schwab writes it (BRK/B) is the ticker market knows (BRK.B).
    ticker = raw.strip().upper().replace("/", ".")
    if not ticker or len(ticker) > 7 or not set(ticker) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ.-"):
        raise ValueError(f"Symbol is not a stock ticker: {raw!r}")
    return ticker


def _trade(kind: Kind, cells: dict[str, str], amount: Decimal, base: dict[str, object]) -> Entry:
    ticker = _ticker(cells["symbol"])
    quantity = _quantity(cells["quantity"])
    price = _money(cells["price"], "Price")
    if price is None or price < 0:
        raise ValueError("Price is required and cannot be negative")
    stated_fee = _money(cells["fees & comm"], "Fees & Comm", 4) or ZERO
    if stated_fee < 0:
        raise ValueError("Fees & Comm cannot be negative")
    if (kind is Kind.BUY) != (amount < 0) or amount == 0:
        sign = "negative" if kind is Kind.BUY else "positive"
        raise ValueError(f"Amount of a {kind.value} must be {sign}")
    ruled = trade_amount(kind, quantity, price, stated_fee)
    # What the displayed price and the cent hide: half a unit of the price's last place
    # on every share, and a cent.
    exponent = price.as_tuple().exponent
    assert isinstance(exponent, int)
    tolerance = quantity * Decimal(5).scaleb(exponent - 1) + Decimal("0.01")
    difference = amount - ruled
    if abs(difference) > tolerance:
        raise ValueError(
            f"Amount {amount} is not Quantity x Price and Fees & Comm ({ruled})"
            f" within the rounding of the price shown ({tolerance})"
        )
    note = str(base.pop("note"))
    fee = money(stated_fee - difference)
    if fee < 0:
        # The broker rounded in the holder's favour: the effective price carries it.
        fee = ZERO
        price = (abs(amount) / quantity).quantize(PRICE)
        if trade_amount(kind, quantity, price, fee) != amount:
            raise ValueError(f"Amount {amount} cannot be written as Quantity x a price to 6 places")
        note += f"; effective price {price} (the broker's rounding)"
    elif fee != stated_fee:
        note += f"; fee includes {fee - stated_fee} of the broker's rounding"
    return Entry(
        kind=kind,
        amount=amount,
        ticker=ticker,
        quantity=quantity,
        price=price,
        fee=fee,
        note=note[:500],
        **base,  # type: ignore[arg-type]
    )


def verdict(cells: dict[str, str], *, now: datetime, entry_id: UUID, seq: int) -> Verdict:
    """The entry of one data row (``cells`` by lower-case header name)."""
    action = " ".join(cells.get("action", "").split())
    if cells.get("date", "").strip().lower().startswith(TOTAL_LINE):
        return Verdict(skipped="the file's total line")
    if action in NOT_IMPORTED:
        return Verdict(unsupported=f"{action}: {NOT_IMPORTED[action]}")
    known = action in TRADES or action in DIVIDENDS or action in TRANSFERS or action in CHARGES
    if not known:
        return Verdict(
            unsupported=f"{action or 'an empty Action'}: not an action the import maps"
            " (see docs/portfolio.md)"
        )
    symbol = cells.get("symbol", "").strip()
    if action in TRANSFERS and symbol:
        return Verdict(unsupported=f"{action} of shares ({symbol}): add the position by hand")
    try:
        executed_at = _day(cells.get("date", ""), now)
        amount = _money(cells.get("amount", ""), "Amount", 4)
        if amount is None or amount == 0:
            raise ValueError("Amount is required")
        description = " ".join(cells.get("description", "").split())
        base: dict[str, object] = {
            "id": entry_id,
            "seq": seq,
            "executed_at": executed_at,
            "note": f"Schwab {action}: {description}" if description else f"Schwab {action}",
        }
        if action in TRADES:
            return Verdict(entry=_trade(TRADES[action], cells, amount, base))
        if action in DIVIDENDS:
            if amount < 0:
                return Verdict(
                    unsupported=f"{action}: a negative dividend (the broker's correction);"
                    " reverse the dividend in the ledger"
                )
            return Verdict(
                entry=Entry(kind=Kind.DIVIDEND, amount=amount, ticker=_ticker(symbol), **base)  # type: ignore[arg-type]
            )
        if action in TRANSFERS:
            kind = Kind.DEPOSIT if amount > 0 else Kind.WITHDRAWAL
            return Verdict(entry=Entry(kind=kind, amount=amount, **base))  # type: ignore[arg-type]
        if amount > 0:
            return Verdict(
                unsupported=f"{action}: money back (a refund) is neither a fee nor a deposit"
            )
        ticker = _ticker(symbol) if symbol else None
        return Verdict(entry=Entry(kind=Kind.FEE, amount=amount, ticker=ticker, **base))  # type: ignore[arg-type]
    except ValueError as exc:
        return Verdict(error=str(exc))


_GROUP = {Kind.DEPOSIT: 0, Kind.DIVIDEND: 0, Kind.BUY: 1, Kind.SELL: 1}


def write_order(entries: Sequence[Entry]) -> list[Entry]:
    """A file's entries (in the file's order) in the order to write them: by day; within
    a day money in (deposits, dividends) before trades before money out (fees,
    withdrawals) -- a file of dates says no more, and a broker does not let a day's
    spending run ahead of its cash -- then the file's own order, read backwards when the
    file is newest first (Schwab's default)."""
    newest_first = len(entries) < 2 or entries[0].executed_at >= entries[-1].executed_at
    chronological = list(reversed(entries)) if newest_first else list(entries)
    return sorted(chronological, key=lambda e: (e.executed_at, _GROUP.get(e.kind, 2)))

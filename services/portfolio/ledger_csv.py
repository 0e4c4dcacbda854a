"""The ledger as CSV: the export, and the import of the same documented layout. Pure: no
I/O (text in, entries and a per-row verdict out).

Layout (docs/portfolio.md, "CSV"), one header row, columns in any order, unknown ones
ignored::

    executed_at,kind,ticker,quantity,price,fee,amount,split_to,split_from,note,id,reverses

- ``executed_at``: ISO 8601 (``2025-03-04T15:30:00Z``; a date alone is that day 00:00
  UTC; a time without a zone is UTC). ``kind``: BUY SELL DEPOSIT WITHDRAWAL DIVIDEND FEE
  SPLIT (any case).
- BUY/SELL: ``ticker``, ``quantity``, ``price``, ``fee`` (default 0); ``amount`` may be
  left empty -- when given it must be the cash the ledger computes for the trade.
- DEPOSIT/DIVIDEND: ``amount`` > 0 (DIVIDEND with its ``ticker``); WITHDRAWAL/FEE:
  ``amount``, its sign ignored (the export writes it negative).
- SPLIT: ``ticker``, ``split_to``, ``split_from``.
- ``id`` and ``reverses`` are what the export writes: a row cancelled by a reversal in
  the file, and the reversal itself, are both skipped, so importing an export gives the
  ledger's live entries.

Decimals follow the ledger's scales (quantity 10 places, price 6, money 4); more places
are an error, never rounded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from uuid import uuid4

from services.portfolio import schwab_csv
from services.portfolio.domain import Entry, Kind, trade_amount
from services.portfolio.domain.ledger import ZERO

COLUMNS = (
    "executed_at",
    "kind",
    "ticker",
    "quantity",
    "price",
    "fee",
    "amount",
    "split_to",
    "split_from",
    "note",
    "id",
    "reverses",
)
MAX_ROWS = 50_000
_TICKER_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ.-")


def _text(value: Decimal | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return str(value)


def export(entries: Iterable[Entry]) -> str:
    """Every entry (reversed and reversing ones included), in execution order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in sorted(entries, key=lambda e: (e.executed_at, e.seq)):
        writer.writerow(
            [
                e.executed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                e.kind.value,
                e.ticker or "",
                _text(e.quantity),
                _text(e.price),
                _text(e.fee) if e.kind in (Kind.BUY, Kind.SELL) else "",
                _text(e.amount),
                _text(e.split_to),
                _text(e.split_from),
                e.note or "",
                str(e.id),
                str(e.reverses) if e.reverses else "",
            ]
        )
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its entry, or why it has none (``skipped`` and ``unsupported``, a
    broker's action the ledger does not take, are not errors in the file)."""

    line: int
    entry: Entry | None = None
    error: str | None = None
    skipped: str | None = None
    unsupported: str | None = None


class CsvRejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _decimal(raw: str, name: str, places: int, *, positive: bool = False) -> Decimal:
    try:
        value = Decimal(raw.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {raw!r}") from None
    if not value.is_finite():
        raise ValueError(f"{name} is not a number: {raw!r}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise ValueError(f"{name} has more than {places} decimal places")
    if positive and value <= 0:
        raise ValueError(f"{name} must be more than 0")
    if abs(value) >= Decimal(10) ** (16 if places == 4 else 14):
        raise ValueError(f"{name} is too large")
    return value


def _when(raw: str, now: datetime) -> datetime:
    raw = raw.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            value = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"executed_at is not an ISO 8601 date or time: {raw!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value > now:
        raise ValueError("executed_at is in the future")
    return value


def _ticker(raw: str) -> str:
    ticker = raw.strip().upper()
    if not ticker or len(ticker) > 7 or not set(ticker) <= _TICKER_CHARS:
        raise ValueError(f"ticker is not a ticker: {raw!r}")
    return ticker


def _entry(cells: dict[str, str], now: datetime, seq: int) -> Entry:
    kind_text = cells.get("kind", "").strip().upper()
    try:
        kind = Kind(kind_text)
    except ValueError:
        raise ValueError(f"kind must be one of {', '.join(k.value for k in Kind)}") from None
    note = cells.get("note", "").strip()[:500] or None
    base = {"id": uuid4(), "seq": seq, "executed_at": _when(cells.get("executed_at", ""), now)}

    def need(name: str) -> str:
        value = cells.get(name, "").strip()
        if not value:
            raise ValueError(f"{name} is required for {kind.value}")
        return value

    if kind in (Kind.BUY, Kind.SELL):
        quantity = _decimal(need("quantity"), "quantity", 10, positive=True)
        price = _decimal(need("price"), "price", 6)
        fee = _decimal(cells["fee"], "fee", 4) if cells.get("fee", "").strip() else ZERO
        if price < 0 or fee < 0:
            raise ValueError("price and fee cannot be negative")
        amount = trade_amount(kind, quantity, price, fee)
        given = cells.get("amount", "").strip()
        if given and _decimal(given, "amount", 4) != amount:
            raise ValueError(f"amount {given} is not quantity x price and fee ({amount})")
        return Entry(
            kind=kind,
            amount=amount,
            ticker=_ticker(need("ticker")),
            quantity=quantity,
            price=price,
            fee=fee,
            note=note,
            **base,  # type: ignore[arg-type]
        )
    if kind is Kind.SPLIT:
        try:
            to, frm = int(need("split_to")), int(need("split_from"))
        except ValueError:
            raise ValueError("split_to and split_from must be whole numbers") from None
        if not (1 <= to <= 1_000_000 and 1 <= frm <= 1_000_000):
            raise ValueError("split_to and split_from must be between 1 and 1,000,000")
        return Entry(
            kind=kind,
            amount=ZERO,
            ticker=_ticker(need("ticker")),
            split_to=to,
            split_from=frm,
            note=note,
            **base,  # type: ignore[arg-type]
        )
    amount = abs(_decimal(need("amount"), "amount", 4))
    if amount == 0:
        raise ValueError("amount must not be 0")
    if kind in (Kind.DEPOSIT, Kind.DIVIDEND) and _decimal(need("amount"), "amount", 4) < 0:
        raise ValueError(f"a {kind.value} amount must be positive")
    signed = amount if kind in (Kind.DEPOSIT, Kind.DIVIDEND) else -amount
    ticker = cells.get("ticker", "").strip()
    if kind is Kind.DIVIDEND and not ticker:
        raise ValueError("ticker is required for DIVIDEND")
    return Entry(
        kind=kind,
        amount=signed,
        ticker=_ticker(ticker) if ticker and kind in (Kind.DIVIDEND, Kind.FEE) else None,
        note=note,
        **base,  # type: ignore[arg-type]
    )


def fingerprint(e: Entry) -> tuple[object, ...]:
    """What makes two entries the same transaction (decimals compared by value)."""

    def n(value: Decimal | None) -> Decimal | None:
        return value.normalize() if value is not None else None

    return (
        e.executed_at,
        e.kind,
        e.ticker,
        n(e.quantity),
        n(e.price),
        n(e.fee),
        n(e.amount),
        e.split_to,
        e.split_from,
    )


def _records(text: str) -> list[tuple[int, list[str]]]:
    """The file's non-blank records with their line numbers."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            if not any(c.strip() for c in record):
                continue
            if len(records) > MAX_ROWS + 2:  # a header and a title line besides the rows
                raise CsvRejected(f"More than {MAX_ROWS:,} rows; split the file.")
            records.append((reader.line_num, record))
    except csv.Error as exc:
        if not records:
            raise CsvRejected(f"The file is not CSV: {exc}.") from None
        raise CsvRejected(f"Line {reader.line_num} is not CSV: {exc}.") from None
    if not records:
        raise CsvRejected("The file is empty.")
    return records


def parse(text: str, *, now: datetime, first_seq: int) -> list[Row]:
    """Each data row's entry or error (the documented layout). Raises
    :class:`CsvRejected` when the file as a whole is unusable (no header, no
    ``kind``/``executed_at`` column, too many rows)."""
    return _native(_records(text), now=now, first_seq=first_seq)


def _native(records: list[tuple[int, list[str]]], *, now: datetime, first_seq: int) -> list[Row]:
    header = [h.strip().lower() for h in records[0][1]]
    missing = [c for c in ("executed_at", "kind") if c not in header]
    if missing:
        raise CsvRejected(f"The header lacks {', '.join(missing)} (see the documented layout).")
    if len(records) - 1 > MAX_ROWS:
        raise CsvRejected(f"More than {MAX_ROWS:,} rows; split the file.")
    rows = [(line, dict(zip(header, record, strict=False))) for line, record in records[1:]]
    cancelled = {c.get("reverses", "").strip() for _, c in rows} - {""}
    out: list[Row] = []
    for i, (line, cells) in enumerate(rows):
        if cells.get("reverses", "").strip():
            out.append(Row(line, skipped="a reversal: neither it nor what it cancels is imported"))
            continue
        if cells.get("id", "").strip() in cancelled:
            out.append(Row(line, skipped="cancelled by a reversal in the file"))
            continue
        try:
            out.append(Row(line, entry=_entry(cells, now, first_seq + i)))
        except ValueError as exc:
            out.append(Row(line, error=str(exc)))
    return out


def _schwab(records: list[tuple[int, list[str]]], *, now: datetime, first_seq: int) -> list[Row]:
    start = next(i for i, (_, cells) in enumerate(records[:3]) if schwab_csv.is_header(cells))
    if len(records) - start - 1 > MAX_ROWS:
        raise CsvRejected(f"More than {MAX_ROWS:,} rows; split the file.")
    header = [h.strip().lower() for h in records[start][1]]
    verdicts: list[tuple[int, schwab_csv.Verdict]] = []
    for line, record in records[start + 1 :]:
        cells = dict(zip(header, record, strict=False))
        verdicts.append((line, schwab_csv.verdict(cells, now=now, entry_id=uuid4(), seq=0)))
    # Sequence numbers in the order the entries happened, not the file's (newest first).
    entries = [v.entry for _, v in verdicts if v.entry is not None]
    seq_of = {e.id: first_seq + i for i, e in enumerate(schwab_csv.write_order(entries))}
    return [
        Row(
            line,
            entry=replace(v.entry, seq=seq_of[v.entry.id]) if v.entry is not None else None,
            error=v.error,
            skipped=v.skipped,
            unsupported=v.unsupported,
        )
        for line, v in verdicts
    ]


LAYOUTS = ("native", "schwab")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A file's rows in its layout. ``repeats_are_distinct``: a broker's rows carry no
    time or id, so two equal rows in one file are two transactions (two equal fees on a
    day); only the native layout's equal rows are one transaction written twice."""

    layout: str
    rows: list[Row]
    repeats_are_distinct: bool


def detect(records: list[tuple[int, list[str]]]) -> str | None:
    """The layout a file's first lines announce, or None."""
    if any(schwab_csv.is_header(cells) for _, cells in records[:3]):
        return "schwab"
    header = {h.strip().lower() for h in records[0][1]}
    if {"executed_at", "kind"} <= header:
        return "native"
    return None


def read(text: str, *, layout: str | None, now: datetime, first_seq: int) -> Parsed:
    """Each data row's verdict in ``layout`` (one of :data:`LAYOUTS`; None: the layout the
    header shows). Raises :class:`CsvRejected` when the file as a whole is unusable."""
    records = _records(text)
    found = detect(records)
    if layout is None:
        if found is None:
            raise CsvRejected(
                "The header is neither the documented layout's (executed_at, kind, ...)"
                " nor Schwab's export's (Date, Action, Symbol, ...)."
            )
        layout = found
    if layout == "schwab":
        if found != "schwab":
            raise CsvRejected(
                "The file is not Schwab's transactions export: no header "
                '"Date","Action","Symbol","Description","Quantity","Price","Fees & Comm","Amount".'
            )
        return Parsed(layout, _schwab(records, now=now, first_seq=first_seq), True)
    return Parsed(layout, _native(records, now=now, first_seq=first_seq), False)

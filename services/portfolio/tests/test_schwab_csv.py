"""Schwab's transactions export read as ledger entries (no database).

The fixture is written in the layout Schwab's site exports (Accounts > History > Export):
the header ``"Date","Action","Symbol","Description","Quantity","Price","Fees & Comm",
"Amount"``, every cell quoted, newest first, an optional title line above the header and a
``"Transactions Total"`` line at the end, ``MM/DD/YYYY [as of MM/DD/YYYY]`` dates, ``$``
amounts with thousands separators. The layout and the action names were taken from
public files in that layout, not from Schwab's own documentation (it publishes none for
the CSV): the fixtures of KapJI/capital-gains-calculator (``tests/schwab/data``), the
sample of dickwolff/Export-To-Ghostfolio (``samples/schwab-export.csv``) and the header
line beancount_reds_importers' Schwab importer matches. The rows of the fixture
(``data/schwab-transactions.csv``) are made up.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.portfolio.domain import Kind, replay, trade_amount
from services.portfolio.ledger_csv import CsvRejected, read

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal

EXPORT = (Path(__file__).parent / "data" / "schwab-transactions.csv").read_text()


def amounts(text: str, lines: set[int]) -> Decimal:
    """The sum of the Amount cells on ``lines``, read with csv alone (the statement's
    side of the reconciliation)."""
    total = D(0)
    reader = csv.reader(io.StringIO(text))
    for record in reader:
        if reader.line_num in lines:
            total += D(record[7].replace("$", "").replace(",", ""))
    return total


def test_the_export_maps_each_action_and_reports_the_rest() -> None:
    parsed = read(EXPORT, layout=None, now=NOW, first_seq=1)
    assert parsed.layout == "schwab" and parsed.repeats_are_distinct
    verdicts = {
        r.line: (r.entry.kind if r.entry else None, r.unsupported, r.skipped, r.error)
        for r in parsed.rows
    }
    kinds = {line: v[0] for line, v in verdicts.items() if v[0] is not None}
    assert kinds == {
        3: Kind.FEE,
        4: Kind.FEE,  # the same fee twice on a day is two fees
        6: Kind.BUY,  # dividend reinvested: the dividend, then the purchase
        7: Kind.DIVIDEND,
        8: Kind.SELL,
        9: Kind.DIVIDEND,
        10: Kind.FEE,
        11: Kind.BUY,
        12: Kind.BUY,
        15: Kind.WITHDRAWAL,
        16: Kind.DEPOSIT,
    }
    unsupported = {line: v[1] for line, v in verdicts.items() if v[1]}
    assert sorted(unsupported) == [5, 13, 14]
    assert "no interest kind" in (unsupported[5] or "")
    assert "corporate actions" in (unsupported[13] or "")
    assert "Buy to Open" in (unsupported[14] or "")
    assert verdicts[17][2] == "the file's total line"
    assert not any(v[3] for v in verdicts.values())


def test_the_imported_cash_is_the_statements_to_the_cent() -> None:
    parsed = read(EXPORT, layout="schwab", now=NOW, first_seq=1)
    entries = [r.entry for r in parsed.rows if r.entry]
    mapped = {r.line for r in parsed.rows if r.entry}
    ledger = replay(entries)  # in the order they happened: the file is newest first
    assert ledger.cash == amounts(EXPORT, mapped) == D("4471.97")
    assert ledger.positions["AAPL"].quantity == D(20)
    assert ledger.positions["VTI"].quantity == D("20.1234")
    # Every trade obeys the ledger's rule exactly: amount = -(quantity x price + fee).
    for e in entries:
        if e.kind in (Kind.BUY, Kind.SELL):
            assert e.quantity is not None and e.price is not None
            assert trade_amount(e.kind, e.quantity, e.price, e.fee) == e.amount
            assert e.fee >= 0


def test_the_brokers_rounding_goes_into_the_fee_or_the_price() -> None:
    by_line = {r.line: r.entry for r in read(EXPORT, layout=None, now=NOW, first_seq=1).rows}
    sell = by_line[8]
    assert sell is not None
    # 10 x 241.5301 - 0.03 = 2415.2710; Schwab paid 2415.27: a tenth of a cent more fee.
    assert (sell.price, sell.fee, sell.amount) == (D("241.5301"), D("0.031"), D("2415.27"))
    assert sell.executed_at == datetime(2025, 2, 13, tzinfo=UTC)  # the "as of" date
    assert "rounding" in (sell.note or "")
    reinvested = by_line[6]
    assert reinvested is not None
    # 0.1234 x 290.87 = 35.8934 > 35.89 paid: the fee cannot go negative, the price
    # becomes the effective one.
    assert reinvested.fee == 0 and reinvested.amount == D("-35.89")
    assert reinvested.price == (D("35.89") / D("0.1234")).quantize(D("0.000001"))
    assert "effective price" in (reinvested.note or "")


def test_a_day_writes_money_in_before_trades_before_money_out() -> None:
    entries = [r.entry for r in read(EXPORT, layout=None, now=NOW, first_seq=1).rows if r.entry]
    ordered = sorted(entries, key=lambda e: (e.executed_at, e.seq))
    first_day = [e.kind for e in ordered if e.executed_at.day == 6 and e.executed_at.month == 1]
    assert first_day == [Kind.DEPOSIT, Kind.WITHDRAWAL]
    reinvest_day = [e.kind for e in ordered if e.executed_at == datetime(2025, 2, 18, tzinfo=UTC)]
    assert reinvest_day == [Kind.DIVIDEND, Kind.BUY]
    # An oldest-first file (a merged or re-sorted export) keeps its order.
    lines = EXPORT.splitlines()
    oldest_first = "\n".join([lines[1], *reversed(lines[2:-1])])
    again = [r.entry for r in read(oldest_first, layout=None, now=NOW, first_seq=1).rows if r.entry]
    assert [e.kind for e in sorted(again, key=lambda e: (e.executed_at, e.seq))] == [
        e.kind for e in ordered
    ]


def test_each_bad_row_says_why() -> None:
    text = "\n".join(
        [
            '"Date","Action","Symbol","Description","Quantity","Price","Fees & Comm","Amount"',
            '"13/01/2025","Buy","AAPL","APPLE INC","1","$200.00","","-$200.00"',
            '"01/02/2025","Buy","AAPL","APPLE INC","1","$200.00","","-$210.00"',
            '"01/02/2025","Buy","AAPL","APPLE INC","1","$200.00","","$200.00"',
            '"01/02/2025","Sell","AAPL 02/21/2025 250.00 C","CALL","1","$2.15","","$215.00"',
            '"01/02/2025","Cash Dividend","","NO SYMBOL","","","","$3.00"',
            '"01/02/2025","Cash Dividend","AAPL","APPLE INC","","","","-$3.00"',
            '"01/02/2025","Service Fee","","REFUND","","","","$3.00"',
            '"01/02/2025","Journal","AAPL","SHARES FROM ...456","5","","",""',
            '"01/02/2099","MoneyLink Transfer","","Tfr","","","","$1.00"',
            '"01/02/2025","MoneyLink Transfer","","Tfr","","","","1 dollar"',
            '"01/02/2025","MoneyLink Transfer","","Tfr","","","","$1.00001"',
            '"01/02/2025","Buy","BRK/B","BERKSHIRE HATHAWAY B","1","$400.00","","-$400.00"',
        ]
    )
    rows = {r.line: r for r in read(text, layout="schwab", now=NOW, first_seq=1).rows}
    errors = {line: r.error for line, r in rows.items() if r.error}
    assert sorted(errors) == [2, 3, 4, 5, 6, 10, 11, 12]
    assert "4 decimal places" in (errors[12] or "")  # never rounded
    assert rows[13].entry is not None and rows[13].entry.ticker == "BRK.B"
    assert "MM/DD/YYYY" in (errors[2] or "") and "not Quantity x Price" in (errors[3] or "")
    assert "must be negative" in (errors[4] or "") and "not a stock ticker" in (errors[5] or "")
    assert "future" in (errors[10] or "") and "not an amount" in (errors[11] or "")
    assert all(rows[line].unsupported for line in (7, 8, 9))


@pytest.mark.parametrize(
    ("text", "layout", "why"),
    [
        ("executed_at,kind\n2025-01-02,DEPOSIT", "schwab", "not Schwab's"),
        ('"Date","Action","Symbol"\n"01/02/2025","Buy","X"', None, "neither"),
        (EXPORT, "native", "lacks executed_at, kind"),
    ],
)
def test_a_file_in_another_layout_is_refused_whole(text: str, layout: str | None, why: str) -> None:
    with pytest.raises(CsvRejected) as refused:
        read(text, layout=layout, now=NOW, first_seq=1)
    assert why in refused.value.message

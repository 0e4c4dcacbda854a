"""The ledger's CSV layout (no database): the export reads back, each row's verdict."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.portfolio.domain import Entry, Kind, replay, reversal_of, trade_amount
from services.portfolio.ledger_csv import CsvRejected, export, fingerprint, parse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def entry(seq: int, kind: Kind, amount: str, **fields: object) -> Entry:
    return Entry(
        id=uuid.uuid4(),
        seq=seq,
        kind=kind,
        executed_at=datetime(2025, 1, seq, 15, 30, 0, 123456, tzinfo=UTC),
        amount=D(amount),
        **fields,  # type: ignore[arg-type]
    )


def test_an_export_reads_back_as_the_live_ledger() -> None:
    buy_amount = trade_amount(Kind.BUY, D("2.5"), D("10.123456"), D("1"))
    ledger = [
        entry(1, Kind.DEPOSIT, "1000", note='with "quotes", and commas'),
        entry(
            2,
            Kind.BUY,
            str(buy_amount),
            ticker="BRK.B",
            quantity=D("2.5"),
            price=D("10.123456"),
            fee=D(1),
        ),
        entry(3, Kind.SPLIT, "0", ticker="BRK.B", split_to=3, split_from=2),
        entry(4, Kind.DIVIDEND, "1.25", ticker="BRK.B"),
        entry(5, Kind.FEE, "-2"),
        entry(6, Kind.WITHDRAWAL, "-10"),
    ]
    mistake = entry(7, Kind.WITHDRAWAL, "-5")
    ledger += [mistake, reversal_of(mistake, entry_id=uuid.uuid4(), seq=8, note=None)]
    rows = parse(export(ledger), now=NOW, first_seq=100)
    assert [r.skipped is not None for r in rows] == [False] * 6 + [True, True]
    assert all(r.error is None for r in rows)
    imported = [r.entry for r in rows if r.entry is not None]
    assert [fingerprint(e) for e in imported] == [fingerprint(e) for e in ledger[:6]]
    assert replay(imported).cash == replay(ledger).cash
    assert imported[0].note == 'with "quotes", and commas'


def test_each_bad_row_says_why_and_the_others_still_parse() -> None:
    text = "\n".join(
        [
            "Executed_At,Kind,Ticker,Quantity,Price,Fee,Amount,Split_To,Split_From",
            "2025-01-02,deposit,,,,,500,,",
            "2025-01-03,BUY,acme,3,10,,,,",
            "2025-01-03,BUY,ACME,3,10,,29,,",  # amount disagrees with 3 x 10
            "2025-01-04,SELL,ACME,1.00000000001,10,,,,",  # 11 places
            "2025-01-04,LOAN,,,,,5,,",
            "yesterday,DEPOSIT,,,,,5,,",
            "2099-01-01,DEPOSIT,,,,,5,,",
            "2025-01-05,DEPOSIT,,,,,-5,,",
            "2025-01-05,WITHDRAWAL,,,,,5,,",  # the sign of a withdrawal is ignored
            "2025-01-06,SPLIT,ACME,,,,,two,1",
            ",,,,,,,,",  # blank rows are not rows
        ]
    )
    rows = parse(text, now=NOW, first_seq=1)
    assert [r.line for r in rows] == list(range(2, 12))
    errors = {r.line: r.error for r in rows if r.error}
    assert sorted(errors) == [4, 5, 6, 7, 8, 9, 11]
    assert "amount 29" in (errors[4] or "") and "10 decimal places" in (errors[5] or "")
    assert "future" in (errors[8] or "") and "positive" in (errors[9] or "")
    good = [r.entry for r in rows if r.entry]
    assert [(e.kind, e.ticker, e.amount) for e in good] == [
        (Kind.DEPOSIT, None, D(500)),
        (Kind.BUY, "ACME", D(-30)),
        (Kind.WITHDRAWAL, None, D(-5)),
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("ticker,amount\nA,1", "lacks executed_at, kind"),
        ('kind,executed_at\n"x', "not CSV"),
    ],
)
def test_an_unusable_file_is_refused_whole(text: str, why: str) -> None:
    with pytest.raises(CsvRejected) as refused:
        parse(text, now=NOW, first_seq=1)
    assert why in refused.value.message

"""What the portfolio service publishes. It owns these subjects and payloads.

JetStream stream ``PORTFOLIO`` (through the outbox, written in the transaction of the
change, ``Nats-Msg-Id = event_id``)::

    portfolio.created                Event[PortfolioCreated]: a portfolio was created (by
                                     its owner, or as their default on first use).
    portfolio.transactions.recorded  Event[TransactionsRecorded]: ledger entries were
                                     written (a trade, a deposit, an import's rows, a
                                     rebalance's trades, a split applied from market's
                                     corporate actions), at most MAX_ENTRIES_PER_EVENT per
                                     event (``part`` of ``parts``).
    portfolio.transaction.reversed   Event[TransactionReversed]: an entry was cancelled by
                                     a reversing entry.
    portfolio.holding.flagged        Event[HoldingFlagged]: a holding's recommendation
                                     turned SELL; realtime delivers it to the owner as an
                                     alert.
    portfolio.watchlist.changed      Event[WatchlistChanged]: a watchlist was created,
                                     renamed, its tickers changed, or it was deleted
                                     (``deleted: true``, no tickers). Each event carries
                                     the whole list and its version, so a consumer keeps
                                     the newest version it has seen and needs no other.

Money and quantities are decimal strings, as in the API.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.portfolio.domain import Entry, Portfolio
from shared.messaging import Event

SOURCE = "portfolio"
STREAM = "PORTFOLIO"
PORTFOLIO_CREATED = "portfolio.created"
TRANSACTIONS_RECORDED = "portfolio.transactions.recorded"
TRANSACTION_REVERSED = "portfolio.transaction.reversed"
HOLDING_FLAGGED = "portfolio.holding.flagged"
WATCHLIST_CHANGED = "portfolio.watchlist.changed"
WATCHLIST_CHANGED_VERSION = 1
# Named one by one: a wildcard would also capture request/reply subjects (portfolio.rpc.*),
# and a stream acknowledges what it captures.
STREAM_SUBJECTS = [
    PORTFOLIO_CREATED,
    TRANSACTIONS_RECORDED,
    TRANSACTION_REVERSED,
    HOLDING_FLAGGED,
    WATCHLIST_CHANGED,
]
MAX_ENTRIES_PER_EVENT = 500


class PortfolioCreated(BaseModel):
    portfolio_id: UUID
    owner_id: str
    name: str
    base_currency: str
    is_default: bool


class LedgerEntry(BaseModel):
    """A ledger row as the API shows it (``amount``: the signed effect on cash)."""

    id: UUID
    kind: Literal["BUY", "SELL", "DEPOSIT", "WITHDRAWAL", "DIVIDEND", "FEE", "SPLIT"]
    executed_at: datetime
    amount: Decimal
    ticker: str | None
    quantity: Decimal | None
    price: Decimal | None
    fee: Decimal
    split_to: int | None
    split_from: int | None
    reverses: UUID | None
    note: str | None

    @classmethod
    def of(cls, entry: Entry) -> LedgerEntry:
        return cls(
            id=entry.id,
            kind=entry.kind.value,
            executed_at=entry.executed_at,
            amount=entry.amount,
            ticker=entry.ticker,
            quantity=entry.quantity,
            price=entry.price,
            fee=entry.fee,
            split_to=entry.split_to,
            split_from=entry.split_from,
            reverses=entry.reverses,
            note=entry.note,
        )


class TransactionsRecorded(BaseModel):
    portfolio_id: UUID
    owner_id: str
    version: int = Field(description="The portfolio's version (ETag) after the change.")
    cash: Decimal = Field(description="The cash balance after the change.")
    transactions: list[LedgerEntry] = Field(min_length=1, max_length=MAX_ENTRIES_PER_EVENT)
    part: int = Field(ge=1)
    parts: int = Field(ge=1)


class TransactionReversed(BaseModel):
    portfolio_id: UUID
    owner_id: str
    version: int
    cash: Decimal
    reversed_id: UUID
    reversal: LedgerEntry


class HoldingFlagged(BaseModel):
    """A holding of ``portfolio_id`` whose recommendation turned SELL."""

    owner_id: str
    portfolio_id: UUID
    portfolio_name: str
    ticker: str
    recommendation_id: UUID
    run_id: UUID
    action: Literal["SELL"] = "SELL"
    previous_action: Literal["BUY", "HOLD", "SELL"] | None
    confidence: float = Field(ge=0, le=1)
    quantity: Decimal = Field(description="Shares held when flagged.")
    flagged_at: datetime


def created(portfolio: Portfolio) -> Event[PortfolioCreated]:
    return Event[PortfolioCreated](
        event_type=PORTFOLIO_CREATED,
        source=SOURCE,
        data=PortfolioCreated(
            portfolio_id=portfolio.id,
            owner_id=portfolio.owner_id,
            name=portfolio.name,
            base_currency=portfolio.base_currency,
            is_default=portfolio.is_default,
        ),
    )


def recorded(portfolio: Portfolio, entries: list[Entry]) -> list[Event[TransactionsRecorded]]:
    """``entries`` (written in one change, after which ``portfolio`` is as given) as
    events of at most :data:`MAX_ENTRIES_PER_EVENT` entries each."""
    batches = [
        entries[k : k + MAX_ENTRIES_PER_EVENT]
        for k in range(0, len(entries), MAX_ENTRIES_PER_EVENT)
    ]
    return [
        Event[TransactionsRecorded](
            event_type=TRANSACTIONS_RECORDED,
            source=SOURCE,
            data=TransactionsRecorded(
                portfolio_id=portfolio.id,
                owner_id=portfolio.owner_id,
                version=portfolio.version,
                cash=portfolio.cash,
                transactions=[LedgerEntry.of(e) for e in batch],
                part=n,
                parts=len(batches),
            ),
        )
        for n, batch in enumerate(batches, start=1)
    ]


def reversed_(portfolio: Portfolio, reversal: Entry) -> Event[TransactionReversed]:
    assert reversal.reverses is not None
    return Event[TransactionReversed](
        event_type=TRANSACTION_REVERSED,
        source=SOURCE,
        data=TransactionReversed(
            portfolio_id=portfolio.id,
            owner_id=portfolio.owner_id,
            version=portfolio.version,
            cash=portfolio.cash,
            reversed_id=reversal.reverses,
            reversal=LedgerEntry.of(reversal),
        ),
    )


def flagged(payload: HoldingFlagged) -> Event[HoldingFlagged]:
    return Event[HoldingFlagged](event_type=HOLDING_FLAGGED, source=SOURCE, data=payload)


class WatchlistChanged(BaseModel):
    """A watchlist as it is after the change (``deleted``: it is gone)."""

    watchlist_id: UUID
    owner_id: str
    name: str
    tickers: list[str] = Field(description="In the list's order; empty when deleted.")
    version: int = Field(ge=1, description="Increases with every change, deletion included.")
    deleted: bool = False


def watchlist_changed(payload: WatchlistChanged) -> Event[WatchlistChanged]:
    return Event[WatchlistChanged](
        event_type=WATCHLIST_CHANGED,
        source=SOURCE,
        schema_version=WATCHLIST_CHANGED_VERSION,
        data=payload,
    )

"""What the portfolio service consumes, and our own models of it (we never import another
service's package; unknown fields are ignored, so publishers may add some). Contract tests
``tests/test_contract_portfolio_events.py`` check these models against the publishers'.

- ``market.actions.recorded`` (JetStream stream ``MARKET``): corporate actions. Every
  portfolio that held the ticker at the start of a **split**'s ex-date gets a SPLIT entry
  (quantities and lots change, cost basis does not); see :mod:`.domain.actions`.
  Dividends are not entered: a DIVIDEND entry is cash the user received (net of
  withholding, on the pay date, which market does not know), recorded by the user or
  their broker's import; entering market's gross amount on the ex-date as well would
  count it twice and disagree with the broker's cash.
- ``recommendations.run.completed`` (stream ``RECOMMENDATIONS``): the calls whose action
  changed. A call that turned SELL flags every portfolio holding the ticker (one flag per
  portfolio, ticker and recommendation) and queues ``portfolio.holding.flagged``, which
  realtime delivers to the owner as an alert; a call that is no longer SELL clears the
  ticker's open flags.

Both are durable consumers shared by the service's instances, idempotent under redelivery
(the inbox, and the keys of ``applied_actions`` and ``holding_flags``); each event is
handled in one transaction with the outbox rows it queues.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from services.portfolio import announcements, domain, events, repository
from services.portfolio.domain import LedgerRejected
from services.portfolio.domain import actions as corporate
from shared.messaging import Bus, Delivered, Event, StreamAttachment, claim_once
from shared.runtime import Extension, Resources

logger = logging.getLogger("services.portfolio.consumers")

ACTIONS_RECORDED = "market.actions.recorded"
MARKET_STREAM = "MARKET"
RUN_COMPLETED = "recommendations.run.completed"
RECOMMENDATIONS_STREAM = "RECOMMENDATIONS"
SPLITS_CONSUMER = "portfolio-corporate-actions"
FLAGS_CONSUMER = "portfolio-sell-flags"
# For a split's entry before it has its database sequence number (as in service.py).
_UNWRITTEN_SEQ = 2**62


# --- our models of what we consume ----------------------------------------------------


class MarketAction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    ex_date: date
    kind: str  # "split" or "dividend"; others are not ours to know
    value: float


class ActionsRecorded(BaseModel):
    model_config = ConfigDict(extra="ignore")

    actions: list[MarketAction]


class CallChanged(BaseModel):
    model_config = ConfigDict(extra="ignore")

    recommendation_id: UUID
    ticker: str
    action: str
    previous_action: str | None
    confidence: float


class RunCompleted(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: UUID
    changes: list[CallChanged]


# --- handlers -------------------------------------------------------------------------


async def apply_actions(conn: asyncpg.Connection, actions: list[MarketAction]) -> int:
    """Apply market's splits to every portfolio they concern, in ``conn``'s transaction;
    how many SPLIT entries were written."""
    splits = [a for a in actions if a.kind == "split"]
    if not splits:
        return 0
    holders = await repository.portfolios_with_tickers(conn, sorted({a.ticker for a in splits}))
    # One portfolio at a time, each locked once in id order (as a request would lock it).
    work = sorted(
        ((pid, a) for a in splits for pid in holders.get(a.ticker, [])),
        key=lambda item: (item[0], item[1].ex_date, item[1].ticker),
    )
    written = 0
    for portfolio_id, split in work:
        written += await _apply_split(conn, portfolio_id, split)
    return written


async def _apply_split(conn: asyncpg.Connection, portfolio_id: UUID, split: MarketAction) -> int:
    found = await repository.get_by_id(conn, portfolio_id, lock=True)
    if found is None or await repository.action_applied(
        conn, portfolio_id, split.ticker, split.ex_date, "split"
    ):
        return 0
    entries = await repository.entries(conn, portfolio_id)
    moment = corporate.ex_moment(split.ex_date)
    if corporate.held_before(entries, split.ticker, moment) <= 0:
        return 0  # not held at the ex-date: opened after it (post-split shares), or closed
    existing = corporate.split_on(entries, split.ticker, split.ex_date)
    if existing is not None:  # recorded already (by hand): applied, not doubled
        await repository.record_applied_action(
            conn, portfolio_id, split.ticker, split.ex_date, "split", existing.id
        )
        return 0
    try:
        new = corporate.split_entry(
            split.ticker, split.ex_date, split.value, entry_id=uuid.uuid4(), seq=_UNWRITTEN_SEQ
        )
        ledger = domain.replay([*entries, new])
    except (LedgerRejected, ValueError) as exc:
        # Nothing to retry: the ledger (as its owner wrote it) cannot take this split.
        logger.warning(
            "split of %s on %s not applied to portfolio %s: %s",
            split.ticker,
            split.ex_date,
            portfolio_id,
            exc,
        )
        return 0
    stored = await repository.append(conn, portfolio_id, new)
    updated = await repository.set_balance(conn, portfolio_id, ledger.cash)
    await repository.record_applied_action(
        conn, portfolio_id, split.ticker, split.ex_date, "split", stored.id
    )
    await announcements.entries_written(conn, updated, [stored])
    return 1


async def flag_sells(conn: asyncpg.Connection, run: RunCompleted) -> int:
    """Flag the holdings whose call turned SELL (and clear the flags of calls that are no
    longer SELL), in ``conn``'s transaction; how many flags were raised."""
    cleared = sorted({c.ticker for c in run.changes if c.action != "SELL"})
    if cleared:
        await repository.clear_flags(conn, cleared)
    sells = {c.ticker: c for c in run.changes if c.action == "SELL"}
    if not sells:
        return 0
    holders = await repository.portfolios_with_tickers(conn, sorted(sells))
    by_portfolio: dict[UUID, list[str]] = {}
    for ticker, portfolio_ids in holders.items():
        for portfolio_id in portfolio_ids:
            by_portfolio.setdefault(portfolio_id, []).append(ticker)
    raised = 0
    for portfolio_id in sorted(by_portfolio):
        found = await repository.get_by_id(conn, portfolio_id)
        if found is None:
            continue
        ledger = domain.replay(await repository.entries(conn, portfolio_id))
        for ticker in sorted(by_portfolio[portfolio_id]):
            position = ledger.positions.get(ticker)
            if position is None or position.quantity <= 0:
                continue  # traded once, not held now
            call = sells[ticker]
            flag = await repository.insert_flag(
                conn, portfolio_id, ticker, call.recommendation_id, run.run_id, call.confidence
            )
            if flag is None:
                continue  # flagged by this recommendation already
            raised += 1
            await announcements.holding_flagged(
                conn,
                events.HoldingFlagged(
                    owner_id=found.owner_id,
                    portfolio_id=found.id,
                    portfolio_name=found.name,
                    ticker=ticker,
                    recommendation_id=call.recommendation_id,
                    run_id=run.run_id,
                    previous_action=_action_name(call.previous_action),
                    confidence=min(max(call.confidence, 0.0), 1.0),
                    quantity=position.quantity,
                    flagged_at=flag.flagged_at.astimezone(UTC),
                ),
            )
    return raised


def _action_name(action: str | None) -> Any:
    return action if action in ("BUY", "HOLD", "SELL") else None


# --- the durable consumers ------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


class EventConsumer(Generic[M]):
    """One durable consumer of ``subject`` on ``stream``: each event is handled with
    ``work`` in one transaction, after claiming it in the inbox (a redelivered event is
    acknowledged without effect). Until the stream exists (its publisher declares it) it
    retries quietly."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        stream: str,
        durable: str,
        subject: str,
        model: type[M],
        work: Callable[[asyncpg.Connection, M], Awaitable[object]],
        retry_seconds: float = 30.0,
    ) -> None:
        self._pool = pool
        self._durable = durable
        self._work = work
        self._attachment = StreamAttachment(
            bus,
            stream,
            durable,
            subject,
            Event[model],  # type: ignore[valid-type]
            self.handle,
            retry_seconds=retry_seconds,
        )

    @property
    def attached(self) -> bool:
        return self._attachment.attached

    async def start(self) -> None:
        await self._attachment.start()

    async def stop(self) -> None:
        await self._attachment.stop()

    async def handle(self, event: Event[M], _: Delivered) -> None:
        """Idempotent: a redelivered event changes nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim_once(conn, self._durable, event.event_id):
                return
            await self._work(conn, event.data)


async def _apply_actions(conn: asyncpg.Connection, data: ActionsRecorded) -> None:
    await apply_actions(conn, data.actions)


def event_consumers(*, retry_seconds: float = 5.0) -> Extension:
    """An extension running the service's two consumers for as long as it runs."""

    @asynccontextmanager
    async def extension(app: FastAPI, resources: Resources) -> AsyncIterator[None]:
        consumers: list[EventConsumer[Any]] = [
            EventConsumer(
                resources.pool,
                resources.bus,
                stream=MARKET_STREAM,
                durable=SPLITS_CONSUMER,
                subject=ACTIONS_RECORDED,
                model=ActionsRecorded,
                work=_apply_actions,
                retry_seconds=retry_seconds,
            ),
            EventConsumer(
                resources.pool,
                resources.bus,
                stream=RECOMMENDATIONS_STREAM,
                durable=FLAGS_CONSUMER,
                subject=RUN_COMPLETED,
                model=RunCompleted,
                work=flag_sells,
                retry_seconds=retry_seconds,
            ),
        ]
        for consumer in consumers:
            await consumer.start()
        app.state.event_consumers = consumers
        try:
            yield
        finally:
            for consumer in consumers:
                await consumer.stop()

    return extension

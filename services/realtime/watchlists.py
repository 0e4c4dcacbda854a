"""Realtime's own copy of watchlist membership, for alert rules that target a watchlist.

Portfolio owns watchlists; realtime never reads its schema. Every change to a list comes as
``portfolio.watchlist.changed`` (the whole list, its owner and version) on the JetStream
stream ``PORTFOLIO``; one durable consumer shared by all nodes keeps table ``watchlists``
(newest version wins, so a redelivered or late older event changes nothing; the inbox makes
a redelivery a no-op too) and, in the same transaction, makes the children of every rule on
that list one per ticker. After commit the evaluators are told which children came and went.
Until the stream exists (portfolio declares it) it retries quietly.
"""

from __future__ import annotations

import logging
from uuid import UUID

import asyncpg

from services.realtime import repository, service
from services.realtime.alerting import RuleEvaluator
from services.realtime.domain import AlertRule
from services.realtime.feeds import WATCHLIST_CHANGED, WatchlistChanged
from shared.messaging import Bus, Delivered, Event, StreamAttachment, claim_once

logger = logging.getLogger("realtime.watchlists")


class WatchlistMembership:
    """Consumes ``portfolio.watchlist.changed``; see the module docstring."""

    CONSUMER = "realtime-watchlists"

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        evaluator: RuleEvaluator,
        *,
        stream: str,
        retry_seconds: float = 30.0,
    ) -> None:
        self._pool = pool
        self._evaluator = evaluator
        self._attachment = StreamAttachment(
            bus,
            stream,
            self.CONSUMER,
            WATCHLIST_CHANGED,
            Event[WatchlistChanged],
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

    async def handle(self, event: Event[WatchlistChanged], _: Delivered) -> None:
        """Idempotent: a redelivered event, or one older than the version known, changes
        nothing."""
        change = event.data
        told: list[tuple[AlertRule | None, UUID, str]] = []

        async def changed(rule: AlertRule | None, rule_id: UUID, owner_id: str) -> None:
            told.append((rule, rule_id, owner_id))

        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim_once(conn, self.CONSUMER, event.event_id):
                return
            newer = await repository.store_watchlist(
                conn,
                watchlist_id=change.watchlist_id,
                owner_id=change.owner_id,
                name=change.name,
                tickers=[] if change.deleted else change.tickers,
                version=change.version,
                deleted=change.deleted,
            )
            if not newer:
                return
            tickers = () if change.deleted else tuple(change.tickers)
            for rule in await repository.rules_on_watchlist(conn, change.watchlist_id):
                if rule.owner_id != change.owner_id:  # never: a rule is made on one's own list
                    continue
                await service.sync_children(conn, rule, tickers, changed)
        for child, child_id, owner_id in told:
            await self._evaluator.notify_changed(child, child_id, owner_id)

"""Alerts for holdings that turned SELL, from portfolio's ``portfolio.holding.flagged``
(JetStream stream ``PORTFOLIO``): each flag becomes an alert of condition
``holding_turned_sell`` for the portfolio's owner, with no rule behind it (portfolio
decides who holds what), delivered like every alert: written to the owner's alert history
(for when they are offline), then pushed on ``alerts.user.<id>`` to their ``/ws/alerts``
sockets. A durable consumer shared by all nodes; idempotent (the inbox, and one alert per
owner and flag). Until the stream exists (portfolio declares it) it retries quietly.

``HoldingFlagged`` is our model of the fields we read; ``tests/test_contract_portfolio_events.py``
checks it against portfolio's.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict

from services.realtime import repository
from services.realtime.alerting import publish_alert
from shared.messaging import Bus, Delivered, Event, StreamAttachment, claim_once

logger = logging.getLogger("realtime.holding_alerts")

HOLDING_FLAGGED = "portfolio.holding.flagged"
CONDITION = "holding_turned_sell"


class HoldingFlagged(BaseModel):
    model_config = ConfigDict(extra="ignore")

    owner_id: str
    portfolio_id: UUID
    portfolio_name: str
    ticker: str
    recommendation_id: UUID
    run_id: UUID
    previous_action: str | None = None
    confidence: float
    quantity: Decimal
    flagged_at: datetime


def describe(flag: HoldingFlagged) -> str:
    was = f" (was {flag.previous_action})" if flag.previous_action else ""
    return (
        f"{flag.ticker}, held in {flag.portfolio_name!r}, is now a SELL{was},"
        f" confidence {flag.confidence:.0%}."
    )


class HoldingAlerts:
    """Turns ``portfolio.holding.flagged`` into the owner's alerts; see the module docstring."""

    CONSUMER = "realtime-holding-alerts"

    def __init__(
        self, pool: asyncpg.Pool, bus: Bus, *, stream: str, retry_seconds: float = 5.0
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._attachment = StreamAttachment(
            bus,
            stream,
            self.CONSUMER,
            HOLDING_FLAGGED,
            Event[HoldingFlagged],
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

    async def handle(self, event: Event[HoldingFlagged], _: Delivered) -> None:
        """Idempotent: a redelivered event changes nothing."""
        flag = event.data
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim_once(conn, self.CONSUMER, event.event_id):
                return
            await repository.lock_owner_alerts(conn, flag.owner_id)
            alert = await repository.insert_holding_alert(
                conn,
                owner_id=flag.owner_id,
                ticker=flag.ticker,
                trigger_key=f"flag:{flag.portfolio_id}:{flag.recommendation_id}",
                message=describe(flag),
                data={
                    "portfolio_id": str(flag.portfolio_id),
                    "recommendation_id": str(flag.recommendation_id),
                    "run_id": str(flag.run_id),
                    "action": "SELL",
                    "previous_action": flag.previous_action,
                    "confidence": flag.confidence,
                    "quantity": str(flag.quantity),
                },
            )
        if alert is not None:
            await publish_alert(self._bus, alert)

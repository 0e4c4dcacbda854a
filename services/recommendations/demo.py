"""Demo recommendations: one completed run over the demo universe (simulated)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg

from services.recommendations import repository
from services.recommendations.domain import DISCLOSURE, Action, Recommendation

_DEMO_RUN = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
_TICKERS = ("ACME", "BRGT", "CLDX", "DLTA", "EVRG", "FRSH", "GLXY", "HLTH", "IRON", "JETS")


async def seed_demo(conn: asyncpg.Connection) -> None:
    """Insert the demo run once; later calls change nothing (recommendations are immutable)."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    async with conn.transaction():
        await repository.insert_run(conn, _DEMO_RUN, model_version="demo-0", as_of=date.today())
        for ticker in _TICKERS:
            action = rng.choice(list(Action))
            price = Decimal(str(round(rng.uniform(10, 400), 2)))
            drift = {Action.BUY: 1.12, Action.HOLD: 1.0, Action.SELL: 0.9}[action]
            await repository.insert_recommendation(
                conn,
                Recommendation(
                    id=uuid.uuid5(_DEMO_RUN, ticker),
                    run_id=_DEMO_RUN,
                    ticker=ticker,
                    action=action,
                    confidence=Decimal(str(round(rng.uniform(0.5, 0.95), 3))),
                    price_at_call=price,
                    target_price=(price * Decimal(str(drift))).quantize(Decimal("0.01")),
                    rationale=f"Demo call on simulated data for {ticker}.",
                    disclosure=DISCLOSURE,
                    published_at=now,
                ),
            )

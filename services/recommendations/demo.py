"""Demo recommendations: one run over the demo universe (simulated data), published
like any run, so ``recommendations.run.completed`` goes out through the outbox."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg

from services.recommendations.domain import DISCLOSURE, Action, Recommendation, Run
from services.recommendations.service import publish_run

_DEMO_RUN = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
_TICKERS = ("ACME", "BRGT", "CLDX", "DLTA", "EVRG", "FRSH", "GLXY", "HLTH", "IRON", "JETS")


def demo_run(run_id: uuid.UUID = _DEMO_RUN, *, seed: int = 11) -> Run:
    """A run over the demo tickers; the same calls for the same seed."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    recommendations = []
    for ticker in _TICKERS:
        action = rng.choice(list(Action))
        price = Decimal(str(round(rng.uniform(10, 400), 2)))
        drift = {Action.BUY: "1.12", Action.HOLD: "1.00", Action.SELL: "0.90"}[action]
        recommendations.append(
            Recommendation(
                id=uuid.uuid5(run_id, ticker),
                run_id=run_id,
                ticker=ticker,
                action=action,
                confidence=Decimal(str(round(rng.uniform(0.5, 0.95), 3))),
                price_at_call=price,
                target_price=(price * Decimal(drift)).quantize(Decimal("0.01")),
                rationale=f"Demo call on simulated data for {ticker}.",
                disclosure=DISCLOSURE,
                published_at=now,
            )
        )
    return Run(run_id, "demo-0", date.today(), tuple(recommendations))


async def seed_demo(conn: asyncpg.Connection) -> None:
    """Publish the demo run once; later calls change nothing (recommendations are immutable)."""
    await publish_run(conn, demo_run())

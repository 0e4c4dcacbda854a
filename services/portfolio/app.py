"""The portfolio service's app factory."""

from __future__ import annotations

from fastapi import FastAPI

from services.portfolio import events
from services.portfolio.background import idempotency_janitor, optimiser_warm_up
from services.portfolio.config import PortfolioSettings
from services.portfolio.consumers import event_consumers
from services.portfolio.domain.xray import Limits
from services.portfolio.risk import RiskSettings
from services.portfolio.routes import router
from services.portfolio.states import LedgerStates
from services.portfolio.watchlists.routes import router as watchlists_router
from shared.db import Migration, load_migrations
from shared.runtime import create_part_app, outbox_relay

NAME = "portfolio"
SCHEMA = "portfolio"


def migrations() -> list[Migration]:
    """The portfolio schema's migrations, then those of the shared outbox and cursor key."""
    return (
        load_migrations("services.portfolio.migrations")
        + load_migrations("shared.messaging.migrations", source="outbox")
        + load_migrations("shared.pagination_migrations", source="pagination")
    )


def create_app(settings: PortfolioSettings) -> FastAPI:
    app = create_part_app(
        name=NAME,
        schema=SCHEMA,
        settings=settings,
        migrations=migrations(),
        routers=[router, watchlists_router],
        title="Bourse portfolio service",
        description="Portfolios, the transaction ledger, positions and rebalancing.",
        extensions=[
            idempotency_janitor(),
            outbox_relay(events.STREAM, events.STREAM_SUBJECTS),
            event_consumers(),
            *([optimiser_warm_up()] if settings.optimiser_warm_up else []),
        ],
    )
    app.state.market_timeout = settings.market_timeout_seconds
    app.state.market_history_timeout = settings.market_history_timeout_seconds
    app.state.ledger_states = LedgerStates(settings.ledger_states_capacity)
    app.state.risk_settings = RiskSettings(
        limits=Limits(settings.xray_max_position_weight, settings.xray_max_sector_weight),
        history_days=settings.xray_history_days,
        recommendations_timeout=settings.recommendations_timeout_seconds,
    )
    return app

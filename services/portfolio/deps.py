"""Typed dependencies of the portfolio routes: market's quotes on the part's bus, and the
headers that make a change safe to retry (``Idempotency-Key``) and to race (``If-Match``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from services.portfolio.market import MarketQuotes
from services.portfolio.recommendations import LatestRecommendations
from services.portfolio.risk import RiskSettings, Sources
from services.portfolio.states import Ledgers
from shared.deps import DbTransaction
from shared.runtime import Resources


async def _market(request: Request) -> MarketQuotes:
    resources: Resources = request.app.state.resources
    state = request.app.state
    return MarketQuotes(
        resources.bus, timeout=state.market_timeout, history_timeout=state.market_history_timeout
    )


Market = Annotated[MarketQuotes, Depends(_market)]


async def _sources(request: Request) -> Sources:
    resources: Resources = request.app.state.resources
    settings: RiskSettings = request.app.state.risk_settings
    return Sources(
        LatestRecommendations(resources.bus, timeout=settings.recommendations_timeout), settings
    )


# The latest recommendations on the part's bus, with the x-ray's settings.
XRaySources = Annotated[Sources, Depends(_sources)]


async def _ledgers(request: Request, unit: DbTransaction) -> Ledgers:
    return Ledgers(request.app.state.ledger_states, unit.after_commit)


# The request's ledger states; its transaction is the one ``DbConn`` is in.
LedgerStatesDep = Annotated[Ledgers, Depends(_ledgers)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe: the same key and body give the same response and one"
        " change (kept 24 h); the same key with another body is refused (422).",
    ),
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The portfolio's ETag as last read (412 if it changed since; 428 if"
        " absent); ``*`` skips the check.",
    ),
]

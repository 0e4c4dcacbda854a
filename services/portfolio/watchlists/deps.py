"""Typed dependencies of the watchlist routes: the latest recommendations on the part's bus."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.portfolio.recommendations import LatestRecommendations
from services.portfolio.risk import RiskSettings
from shared.runtime import Resources


async def _recommendations(request: Request) -> LatestRecommendations:
    resources: Resources = request.app.state.resources
    settings: RiskSettings = request.app.state.risk_settings
    return LatestRecommendations(resources.bus, timeout=settings.recommendations_timeout)


Recommendations = Annotated[LatestRecommendations, Depends(_recommendations)]

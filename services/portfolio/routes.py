"""HTTP routes of the portfolio service."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.portfolio import service
from services.portfolio.schemas import PortfolioCreate, PortfolioList, PortfolioOut
from shared.deps import DbPool, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["portfolio"])


@router.get("/portfolio", response_model=PortfolioList, responses=error_responses(401, 403))
async def list_portfolios(pool: DbPool, caller: Viewer) -> PortfolioList:
    """The caller's own portfolios."""
    portfolios = await service.list_portfolios(pool, caller.subject)
    return PortfolioList(items=[PortfolioOut.of(p) for p in portfolios])


@router.post(
    "/portfolio",
    response_model=PortfolioOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422),
)
async def create_portfolio(pool: DbPool, caller: Viewer, body: PortfolioCreate) -> PortfolioOut:
    """Create a portfolio owned by the caller."""
    return PortfolioOut.of(await service.create_portfolio(pool, caller.subject, body))

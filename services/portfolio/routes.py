"""HTTP routes of the portfolio service."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.portfolio import service
from services.portfolio.schemas import PortfolioCreate, PortfolioList, PortfolioOut
from shared.deps import DbConn, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["portfolio"])


@router.get("/portfolio", response_model=PortfolioList, responses=error_responses(401, 403))
async def list_portfolios(conn: DbConn, caller: Viewer) -> PortfolioList:
    """The caller's own portfolios."""
    portfolios = await service.list_portfolios(conn, caller.subject)
    return PortfolioList(items=[PortfolioOut.of(p) for p in portfolios])


@router.post(
    "/portfolio",
    response_model=PortfolioOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422),
)
async def create_portfolio(conn: DbConn, caller: Viewer, body: PortfolioCreate) -> PortfolioOut:
    """Create a portfolio owned by the caller."""
    return PortfolioOut.of(await service.create_portfolio(conn, caller.subject, body))

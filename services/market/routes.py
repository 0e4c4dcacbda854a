"""HTTP routes of the market service: parse, call the service, return a schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.market import service
from services.market.deps import DbPool, Ticker, Viewer
from services.market.schemas import StockDetail, StockPage, StockSummary
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["market"])

_ERRORS = error_responses(401, 403, 422)


@router.get("/stocks", response_model=StockPage, responses=_ERRORS)
async def list_stocks(
    pool: DbPool,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    sector: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=64, description="ticker/name prefix")
    ] = None,
) -> StockPage:
    """Securities ordered by ticker, a page at a time."""
    rows, next_cursor = await service.list_stocks(
        pool, limit=limit, cursor=cursor, sector=sector, search=q
    )
    return StockPage(items=[StockSummary.of(s, q_) for s, q_ in rows], next_cursor=next_cursor)


@router.get(
    "/stocks/{ticker}",
    response_model=StockDetail,
    responses={**_ERRORS, **error_responses(404)},
)
async def get_stock(ticker: Ticker, pool: DbPool, _: Viewer) -> StockDetail:
    """One security with its latest quote."""
    security, quote = await service.get_stock(pool, ticker)
    return StockDetail.of(security, quote)

"""HTTP routes of the watchlists: thin handlers over :mod:`.service`. Every answer about
one list carries its ``ETag``; every change needs ``If-Match`` (``*`` skips the check)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status

from services.portfolio import domain as ledger_domain
from services.portfolio.deps import IfMatch, Market
from services.portfolio.watchlists import service
from services.portfolio.watchlists.deps import Recommendations
from services.portfolio.watchlists.schemas import (
    WatchlistCreate,
    WatchlistOut,
    WatchlistPage,
    WatchlistRename,
    WatchlistTickerAdd,
    WatchlistTickers,
    WatchlistView,
)
from shared.deps import CursorKeyDep, DbConn, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["watchlists"])

_READ = error_responses(401, 403, 404, 422)
_CHANGE = error_responses(401, 403, 404, 409, 412, 422, 428, 503)
# Any case; the service's answer names it upper-case.
TickerPath = Annotated[str, Path(pattern=r"^[A-Za-z]{1,5}([.-][A-Za-z])?$")]


def _out(response: Response, watchlist: WatchlistOut) -> WatchlistOut:
    response.headers["ETag"] = ledger_domain.etag(watchlist.version)
    return watchlist


@router.get("/watchlists", response_model=WatchlistPage, responses=_READ)
async def list_watchlists(
    conn: DbConn,
    caller: Viewer,
    cursor_key: CursorKeyDep,
    limit: int = Query(20, ge=1, le=50),
    cursor: str | None = Query(None, max_length=500),
) -> WatchlistPage:
    """The caller's watchlists (names and tickers), oldest first."""
    items, next_cursor = await service.list_watchlists(
        conn, caller.subject, cursor=cursor, limit=limit, cursor_key=cursor_key
    )
    return WatchlistPage(items=[WatchlistOut.of(w) for w in items], next_cursor=next_cursor)


@router.post(
    "/watchlists",
    response_model=WatchlistOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422, 503),
)
async def create_watchlist(
    conn: DbConn, caller: Viewer, market: Market, body: WatchlistCreate, response: Response
) -> WatchlistOut:
    """Create a watchlist (its tickers must be quoted by market)."""
    created = await service.create(conn, caller.subject, body, market)
    return _out(response, WatchlistOut.of(created))


@router.get("/watchlists/{watchlist_id}", response_model=WatchlistView, responses=_READ)
async def get_watchlist(
    conn: DbConn,
    caller: Viewer,
    market: Market,
    recommendations: Recommendations,
    watchlist_id: UUID,
    response: Response,
) -> WatchlistView:
    """One watchlist with each ticker's live quote and latest recommendation."""
    view = await service.view(conn, caller.subject, watchlist_id, market, recommendations)
    response.headers["ETag"] = ledger_domain.etag(view.version)
    return view


@router.patch("/watchlists/{watchlist_id}", response_model=WatchlistOut, responses=_CHANGE)
async def rename_watchlist(
    conn: DbConn,
    caller: Viewer,
    watchlist_id: UUID,
    body: WatchlistRename,
    response: Response,
    if_match: IfMatch = None,
) -> WatchlistOut:
    """Rename a watchlist (needs ``If-Match``)."""
    renamed = await service.rename(conn, caller.subject, watchlist_id, body.name, if_match)
    return _out(response, WatchlistOut.of(renamed))


@router.delete(
    "/watchlists/{watchlist_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 412, 428),
)
async def delete_watchlist(
    conn: DbConn, caller: Viewer, watchlist_id: UUID, if_match: IfMatch = None
) -> Response:
    """Delete a watchlist (needs ``If-Match``); alert rules on it then cover nothing."""
    await service.delete(conn, caller.subject, watchlist_id, if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/watchlists/{watchlist_id}/tickers", response_model=WatchlistOut, responses=_CHANGE)
async def set_tickers(
    conn: DbConn,
    caller: Viewer,
    market: Market,
    watchlist_id: UUID,
    body: WatchlistTickers,
    response: Response,
    if_match: IfMatch = None,
) -> WatchlistOut:
    """Replace the list's tickers, or reorder them (the same tickers in a new order)."""
    changed = await service.set_tickers(
        conn, caller.subject, watchlist_id, body.tickers, if_match, market
    )
    return _out(response, WatchlistOut.of(changed))


@router.post("/watchlists/{watchlist_id}/tickers", response_model=WatchlistOut, responses=_CHANGE)
async def add_ticker(
    conn: DbConn,
    caller: Viewer,
    market: Market,
    watchlist_id: UUID,
    body: WatchlistTickerAdd,
    response: Response,
    if_match: IfMatch = None,
) -> WatchlistOut:
    """Add a ticker (at ``position``, default last)."""
    changed = await service.add_ticker(
        conn, caller.subject, watchlist_id, body.ticker, body.position, if_match, market
    )
    return _out(response, WatchlistOut.of(changed))


@router.delete(
    "/watchlists/{watchlist_id}/tickers/{ticker}",
    response_model=WatchlistOut,
    responses=error_responses(401, 403, 404, 412, 422, 428),
)
async def remove_ticker(
    conn: DbConn,
    caller: Viewer,
    watchlist_id: UUID,
    ticker: TickerPath,
    response: Response,
    if_match: IfMatch = None,
) -> WatchlistOut:
    """Take a ticker out of the list."""
    changed = await service.remove_ticker(
        conn, caller.subject, watchlist_id, ticker.upper(), if_match
    )
    return _out(response, WatchlistOut.of(changed))

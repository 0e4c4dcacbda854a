"""Use cases of the watchlists, each scoped to the caller (``owner_id``) and taking the
request's connection, in the transaction the request owns.

A change runs as: check any new tickers with market (before any lock: a slow market holds
no one up) → lock the list's row (``FOR UPDATE``) → check ``If-Match`` against its
version (428 missing, 412 stale) → apply the domain's rule → write the row (version + 1)
and queue ``portfolio.watchlist.changed`` in the outbox, in the same transaction: realtime's
copy of the list follows every committed change and nothing else.

A view asks market for the quotes and recommendations for the latest calls at once; either
being away leaves its part marked unavailable, never the list unanswered.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from services.portfolio import domain as ledger_domain
from services.portfolio import events
from services.portfolio.errors import (
    MarketUnavailableError,
    PreconditionRequiredError,
    UnknownTickerError,
    VersionMismatchError,
)
from services.portfolio.market import MarketQuotes
from services.portfolio.recommendations import LatestRecommendations
from services.portfolio.watchlists import domain, repository
from services.portfolio.watchlists.domain import Watchlist, WatchlistRejected
from services.portfolio.watchlists.errors import (
    WatchlistNameTakenError,
    WatchlistNotFoundError,
    WatchlistQuotaError,
    WatchlistRefusedError,
)
from services.portfolio.watchlists.schemas import (
    WATCHLISTS_CURSOR,
    WatchlistCreate,
    WatchlistLine,
    WatchlistPagePosition,
    WatchlistView,
)
from shared.messaging import enqueue
from shared.pagination import CursorKey

_STATUS = {
    "TICKER_ALREADY_LISTED": 409,
    "TICKER_NOT_LISTED": 404,
    "WATCHLIST_FULL": 409,
    "DUPLICATE_TICKER": 422,
}
NO_MARKET = "market did not answer: no quotes"
NO_RECOMMENDATIONS = "recommendations did not answer: no latest calls"


def _refused(exc: WatchlistRejected) -> WatchlistRefusedError:
    return WatchlistRefusedError(
        exc.reason, exc.message, dict(exc.details), _STATUS.get(exc.reason, 409)
    )


async def _check_known(market: MarketQuotes, tickers: list[str]) -> None:
    """Refuse tickers market has no quote for (it answers them ``missing``)."""
    if not tickers:
        return
    snapshot = await market.snapshot(tickers)
    if not snapshot.available:
        raise MarketUnavailableError(
            "Market did not answer, so the tickers cannot be checked; retry shortly.",
            details={"reason": snapshot.problem},
        )
    unknown = [t for t in tickers if t not in snapshot.quotes]
    if unknown:
        raise UnknownTickerError(
            "Market has no quote for some tickers; they cannot be watched.",
            details={"tickers": unknown},
        )


def _check_version(found: Watchlist, if_match: str | None) -> None:
    if if_match is None:
        raise PreconditionRequiredError(
            "Changes to a watchlist need If-Match with its current ETag (or * to skip the check).",
            details={"etag": ledger_domain.etag(found.version)},
        )
    accepted = ledger_domain.if_match_versions(if_match)
    if accepted is not None and found.version not in accepted:
        raise VersionMismatchError(
            "The watchlist changed since you read it; read it again and retry.",
            details={"etag": ledger_domain.etag(found.version)},
        )


async def _announce(conn: asyncpg.Connection, w: Watchlist, *, deleted: bool = False) -> None:
    payload = events.WatchlistChanged(
        watchlist_id=w.id,
        owner_id=w.owner_id,
        name=w.name,
        tickers=[] if deleted else list(w.tickers),
        version=w.version + 1 if deleted else w.version,
        deleted=deleted,
    )
    await enqueue(conn, events.WATCHLIST_CHANGED, events.watchlist_changed(payload))


async def _owned(
    conn: asyncpg.Connection, owner_id: str, watchlist_id: UUID, *, lock: bool = False
) -> Watchlist:
    found = await repository.get(conn, owner_id, watchlist_id, lock=lock)
    if found is None:
        raise WatchlistNotFoundError(details={"watchlist_id": str(watchlist_id)})
    return found


async def list_watchlists(
    conn: asyncpg.Connection,
    owner_id: str,
    *,
    cursor: str | None,
    limit: int,
    cursor_key: CursorKey,
) -> tuple[list[Watchlist], str | None]:
    after = None
    if cursor:
        position = WATCHLISTS_CURSOR.decode(cursor_key, cursor)
        after = (position.created_at, position.id)
    items = await repository.page_for_owner(conn, owner_id, after=after, limit=limit + 1)
    next_cursor = None
    if len(items) > limit:
        last = items[limit - 1]
        next_cursor = WATCHLISTS_CURSOR.encode(
            cursor_key, WatchlistPagePosition(created_at=last.created_at, id=last.id)
        )
    return items[:limit], next_cursor


async def create(
    conn: asyncpg.Connection, owner_id: str, data: WatchlistCreate, market: MarketQuotes
) -> Watchlist:
    try:
        tickers = domain.replaced(data.tickers)
    except WatchlistRejected as exc:
        raise _refused(exc) from None
    await _check_known(market, list(tickers))
    await repository.lock_owner(conn, owner_id)
    if await repository.count_for_owner(conn, owner_id) >= domain.MAX_LISTS_PER_USER:
        raise WatchlistQuotaError(
            f"You can keep at most {domain.MAX_LISTS_PER_USER} watchlists.",
            details={"limit": domain.MAX_LISTS_PER_USER},
        )
    created = await repository.insert(conn, uuid.uuid4(), owner_id, data.name, tickers)
    if created is None:
        raise WatchlistNameTakenError(
            f"You already have a watchlist named {data.name!r}.", details={"name": data.name}
        )
    await _announce(conn, created)
    return created


async def _locked(
    conn: asyncpg.Connection, owner_id: str, watchlist_id: UUID, if_match: str | None
) -> Watchlist:
    found = await _owned(conn, owner_id, watchlist_id, lock=True)
    _check_version(found, if_match)
    return found


async def _write(
    conn: asyncpg.Connection,
    found: Watchlist,
    *,
    name: str | None = None,
    tickers: tuple[str, ...] | None = None,
) -> Watchlist:
    new_name = name if name is not None else found.name
    updated = await repository.update(
        conn, found.id, name=new_name, tickers=tickers if tickers is not None else found.tickers
    )
    if updated is None:
        raise WatchlistNameTakenError(
            f"You already have a watchlist named {new_name!r}.", details={"name": new_name}
        )
    await _announce(conn, updated)
    return updated


async def rename(
    conn: asyncpg.Connection, owner_id: str, watchlist_id: UUID, name: str, if_match: str | None
) -> Watchlist:
    found = await _locked(conn, owner_id, watchlist_id, if_match)
    return await _write(conn, found, name=name)


async def set_tickers(
    conn: asyncpg.Connection,
    owner_id: str,
    watchlist_id: UUID,
    tickers: list[str],
    if_match: str | None,
    market: MarketQuotes,
) -> Watchlist:
    """The whole list replaced (or reordered). Only tickers the list did not hold are
    checked with market: one that market stopped quoting can stay where it is."""
    try:
        wanted = domain.replaced(tickers)
    except WatchlistRejected as exc:
        raise _refused(exc) from None
    current = await _owned(conn, owner_id, watchlist_id)
    await _check_known(market, domain.new_tickers(current.tickers, wanted))
    # Whatever changed since the read above: a ticker not checked was in the list then.
    found = await _locked(conn, owner_id, watchlist_id, if_match)
    return await _write(conn, found, tickers=wanted)


async def add_ticker(
    conn: asyncpg.Connection,
    owner_id: str,
    watchlist_id: UUID,
    ticker: str,
    position: int | None,
    if_match: str | None,
    market: MarketQuotes,
) -> Watchlist:
    await _owned(conn, owner_id, watchlist_id)  # 404 before asking market anything
    await _check_known(market, [ticker])
    found = await _locked(conn, owner_id, watchlist_id, if_match)
    try:
        tickers = domain.added(found.tickers, ticker, position)
    except WatchlistRejected as exc:
        raise _refused(exc) from None
    return await _write(conn, found, tickers=tickers)


async def remove_ticker(
    conn: asyncpg.Connection,
    owner_id: str,
    watchlist_id: UUID,
    ticker: str,
    if_match: str | None,
) -> Watchlist:
    found = await _locked(conn, owner_id, watchlist_id, if_match)
    try:
        tickers = domain.removed(found.tickers, ticker)
    except WatchlistRejected as exc:
        raise _refused(exc) from None
    return await _write(conn, found, tickers=tickers)


async def delete(
    conn: asyncpg.Connection, owner_id: str, watchlist_id: UUID, if_match: str | None
) -> None:
    found = await _locked(conn, owner_id, watchlist_id, if_match)
    await repository.delete(conn, found.id)
    await _announce(conn, found, deleted=True)


async def view(
    conn: asyncpg.Connection,
    owner_id: str,
    watchlist_id: UUID,
    market: MarketQuotes,
    recommendations: LatestRecommendations,
) -> WatchlistView:
    """The list with each ticker's live quote and latest call."""
    found = await _owned(conn, owner_id, watchlist_id)
    snapshot, book = await asyncio.gather(
        market.snapshot(found.tickers), recommendations.latest(found.tickers)
    )
    quotes = {
        t: domain.QuoteView(
            price=q.price,
            previous_close=q.previous_close,
            change=q.change,
            change_percent=q.change_percent,
            volume=q.volume,
            as_of=datetime.fromtimestamp(q.ts / 1000, tz=UTC),
            sector=q.sector,
        )
        for t, q in snapshot.quotes.items()
    }
    calls = {
        t: (c.id, c.action, c.confidence, c.target_price, c.price_at_call, c.horizon_days)
        for t, c in book.calls.items()
    }
    shown = domain.lines(found.tickers, quotes, snapshot.available, calls)
    return WatchlistView(
        id=found.id,
        name=found.name,
        tickers=list(found.tickers),
        version=found.version,
        created_at=found.created_at,
        updated_at=found.updated_at,
        items=[WatchlistLine.of(line) for line in shown],
        quotes_available=snapshot.available,
        quotes_note=None if snapshot.available else NO_MARKET,
        prices_as_of=min((q.as_of for q in quotes.values()), default=None),
        recommendations_available=book.available,
        recommendations_note=None if book.available else NO_RECOMMENDATIONS,
        recommendation_run_id=book.run_id,
        recommendations_as_of=book.as_of,
        recommendations_generated_at=book.generated_at,
    )

"""HTTP routes of the market service: parse, call the service, return a schema.

Hot reads go through the response cache (cache-aside in Redis with a one-second copy in the
process), are encoded once with orjson, and answer ``If-None-Match`` with 304 and gzip to
clients that accept it. Time-to-live by kind of data: live quotes 1 s, lists and the market
views 2-5 s (they follow the feed), analysis 30 s, price history 1 h (it changes at the end
of a session, when ``market.eod.completed`` drops it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from services.market import encoders, schemas
from services.market.background import EOD_TAG, ML_TAG
from services.market.cached_reads import CachedRoute, request_key
from services.market.deps import authorize, request_connection, request_unit
from services.market.domain import SORTABLE, TICKER_PATTERN, StockFilter
from services.market.errors import InvalidDateRangeError, InvalidImportError
from services.market.service import imports as import_service
from services.market.service import market as market_service
from services.market.service import stocks as stock_service
from shared.cache import CachedBody, ResponseCache, cached_response
from shared.deps import CursorKeyDep
from shared.errors import ValidationFailedError, error_responses
from shared.inputs import FiniteFloat

router = APIRouter(prefix="/api/v1", tags=["market"])

_ERRORS = error_responses(401, 403, 422)
_WITH_404 = {**_ERRORS, **error_responses(404)}

TTL_QUOTES = 1.0
TTL_LISTS = 2.0
TTL_MARKET = 5.0
TTL_ANALYSIS = 30.0
TTL_HISTORY = 3600.0
STREAM_ROWS = 5000

TickerPath = Annotated[
    str, Path(pattern=TICKER_PATTERN, description="1-5 letters, optional class: BRK.B")
]  # price histories longer than this are streamed, not cached


async def _cached(
    request: Request,
    ttl: float,
    build: Callable[[], Awaitable[bytes]],
    *,
    media_type: str = "application/json",
    tags: tuple[str, ...] = (),
    role: str = "viewer",
) -> Response:
    """The cached answer for this GET (keyed by path and query), built on a miss; the
    fast path (:mod:`services.market.cached_reads`) serves the next hits."""
    cache: ResponseCache = request.app.state.response_cache
    key = request_key(request.scope)

    async def make() -> CachedBody:
        return CachedBody.build(await build(), media_type)

    body = await cache.get_or_build(key, ttl, make, tags=tags)
    routes: dict[str, CachedRoute] = request.app.state.cached_routes
    if key not in routes and len(routes) < 100_000:
        routes[key] = CachedRoute(request.scope["route"].path, role, int(ttl))
    return cached_response(request, body, max_age=int(ttl))


def _sort(raw: str) -> tuple[str, bool]:
    descending = raw.startswith("-")
    name = raw.lstrip("-+")
    if name not in SORTABLE:
        raise ValidationFailedError(f"Cannot sort by {name!r}.", details={"sortable": SORTABLE})
    return name, descending


def _fields(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    wanted = [f.strip() for f in raw.split(",") if f.strip()]
    if not wanted:
        raise ValidationFailedError(
            "fields names no field: list one or more, comma-separated, or leave it out"
            " for all of them.",
            details={"field": "fields", "fields": list(schemas.STOCK_FIELDS)},
        )
    unknown = [f for f in wanted if f not in schemas.STOCK_FIELDS]
    if unknown:
        raise ValidationFailedError(
            "Unknown fields.", details={"unknown": unknown, "fields": list(schemas.STOCK_FIELDS)}
        )
    return wanted if "ticker" in wanted else ["ticker", *wanted]


@router.get("/stocks", response_model=schemas.StockPage, responses=_ERRORS)
async def list_stocks(
    request: Request,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    sector: Annotated[str | None, Query(max_length=64)] = None,
    industry: Annotated[str | None, Query(max_length=96)] = None,
    exchange: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=64, description="ticker prefix or name text")
    ] = None,
    min_price: FiniteFloat | None = None,
    max_price: FiniteFloat | None = None,
    min_change_percent: FiniteFloat | None = None,
    max_change_percent: FiniteFloat | None = None,
    min_volume: FiniteFloat | None = None,
    max_volume: FiniteFloat | None = None,
    min_market_cap: FiniteFloat | None = None,
    max_market_cap: FiniteFloat | None = None,
    sort: Annotated[
        str,
        Query(description="ticker, name, price, change_percent, volume, market_cap; -x descends"),
    ] = "ticker",
    fields: Annotated[
        str | None, Query(description="comma-separated StockSummary fields (ticker always)")
    ] = None,
) -> Response:
    """Securities a page at a time, filtered, sorted, with the chosen fields."""
    await authorize(request, "viewer")
    sort_name, descending = _sort(sort)
    chosen = _fields(fields)
    filters = StockFilter(
        sector=sector,
        industry=industry,
        exchange=exchange,
        search=q,
        ranges=tuple(
            (name, low, high)
            for name, low, high in (
                ("price", min_price, max_price),
                ("change_percent", min_change_percent, max_change_percent),
                ("volume", min_volume, max_volume),
                ("market_cap", min_market_cap, max_market_cap),
            )
            if low is not None or high is not None
        ),
    )

    async def build() -> bytes:
        async with request_connection(request) as conn:
            rows, next_cursor = await stock_service.list_stocks(
                conn,
                limit=limit,
                cursor=cursor,
                cursor_key=cursor_key,
                filters=filters,
                sort=sort_name,
                descending=descending,
            )
        return encoders.stock_page(rows, chosen, next_cursor)

    return await _cached(request, TTL_LISTS, build)


@router.get("/stocks/{ticker}", response_model=schemas.StockDetail, responses=_WITH_404)
async def get_stock(request: Request, ticker: TickerPath) -> Response:
    """One security with its latest quote."""
    await authorize(request, "viewer")
    ticker = ticker.upper()

    async def build() -> bytes:
        async with request_connection(request) as conn:
            security, quote = await stock_service.get_stock(conn, ticker)
        return encoders.stock_detail(security, quote)

    return await _cached(request, TTL_QUOTES, build)


@router.get(
    "/stocks/{ticker}/prices",
    response_model=schemas.PriceHistory,
    responses={**_WITH_404, 200: {"content": {"text/csv": {}}}},
)
async def get_prices(
    request: Request,
    ticker: TickerPath,
    start: date | None = None,
    end: date | None = None,
    interval: Literal["daily", "weekly", "monthly"] = "daily",
    adjusted: bool = True,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Bars between ``start`` and ``end`` (default: the last year), daily or per week/month,
    split- and dividend-adjusted (default) or as traded, as JSON or CSV."""
    await authorize(request, "viewer")
    ticker = ticker.upper()
    start, end = stock_service.default_range(start, end, date.today())
    series = None

    async def load() -> stock_service.PriceSeries:
        async with request_connection(request) as conn:
            return await stock_service.price_history(
                conn, ticker, start=start, end=end, interval=interval, adjusted=adjusted
            )

    # A very long daily range is streamed (and not cached).
    if interval == "daily" and (end - start).days * 252 / 365 > STREAM_ROWS:
        series = await load()
        media = "text/csv" if format == "csv" else "application/json"
        return StreamingResponse(
            encoders.price_history_stream(series, start, end, format), media_type=media
        )

    async def build() -> bytes:
        data = await load()
        if format == "csv":
            return encoders.price_history_csv(data)
        return encoders.price_history_json(data, start, end)

    media_type = "text/csv" if format == "csv" else "application/json"
    return await _cached(request, TTL_HISTORY, build, media_type=media_type, tags=(EOD_TAG,))


@router.get(
    "/stocks/{ticker}/analysis",
    response_model=schemas.Analysis | schemas.AnalysisWithModel,
    responses=_WITH_404,
)
async def get_analysis(
    request: Request,
    ticker: TickerPath,
    include_ml: Annotated[
        bool,
        Query(
            description="Add the model's view (`ml`): the stock's call in the latest live"
            " recommendation run, its score and factor contributions, with disclosures"
        ),
    ] = False,
) -> Response:
    """Returns, moving averages, RSI, MACD, Bollinger bands, ATR, volatility, drawdown, beta,
    52-week range, relative strength and average volume - each with its parameters -
    over the split- and dividend-adjusted daily history; with ``include_ml=true``, the
    model's view of the stock too (:class:`schemas.AnalysisWithModel`)."""
    await authorize(request, "viewer")
    ticker = ticker.upper()

    async def build() -> bytes:
        async with request_connection(request) as conn:
            security, live_price, result = await stock_service.analysis(conn, ticker)
            if not include_ml:
                return encoders.analysis(security, live_price, result)
            view = await stock_service.model_view(conn, ticker)
        return encoders.analysis_with_model(security, live_price, result, view)

    tags = (EOD_TAG, ML_TAG) if include_ml else (EOD_TAG,)
    return await _cached(request, TTL_ANALYSIS, build, tags=tags)


@router.get("/market/overview", response_model=schemas.Overview, responses=_ERRORS)
async def get_overview(request: Request) -> Response:
    """Breadth, the universe index, top gainers, losers and most active, 52-week highs/lows."""
    await authorize(request, "viewer")

    async def build() -> bytes:
        async with request_connection(request) as conn:
            return encoders.json(await market_service.overview(conn))

    return await _cached(request, TTL_MARKET, build, tags=(EOD_TAG,))


@router.get("/market/sectors", response_model=schemas.Sectors, responses=_ERRORS)
async def get_sectors(request: Request) -> Response:
    """Per GICS sector: performance over 1d/1w/1m/3m/YTD/1y, breadth, leaders and laggards."""
    await authorize(request, "viewer")

    async def build() -> bytes:
        async with request_connection(request) as conn:
            return encoders.json(await market_service.sectors(conn))

    return await _cached(request, TTL_MARKET, build, tags=(EOD_TAG,))


@router.get("/market/index", response_model=schemas.IndexHistory, responses=_ERRORS)
async def get_index(
    request: Request, start: date | None = None, end: date | None = None
) -> Response:
    """The universe index's daily levels, price return and total return, between ``start``
    and ``end`` (default: its whole history), with its methodology: the benchmark of every
    beta served, for anyone to recompute betas and excess returns."""
    await authorize(request, "viewer")
    if start is not None and end is not None and start > end:
        raise InvalidDateRangeError(start, end)

    async def build() -> bytes:
        async with request_connection(request) as conn:
            return encoders.json(await market_service.index_history(conn, start, end))

    return await _cached(request, TTL_HISTORY, build, tags=(EOD_TAG,))


@router.get("/market/quotes", response_model=schemas.QuoteSnapshot, responses=_ERRORS)
async def get_quotes(request: Request) -> Response:
    """Every latest quote (the whole universe), from bytes encoded once a second."""
    await authorize(request, "viewer")

    async def build() -> bytes:
        async with request_connection(request) as conn:
            return await market_service.quote_snapshot(conn)

    return await _cached(request, TTL_QUOTES, build)


@router.get("/market/status", response_model=schemas.MarketStatus, responses=_ERRORS)
async def get_status(request: Request) -> Response:
    """Storage path, universe size, the universe load's progress, the live feed."""
    await authorize(request, "viewer")
    async with request_connection(request) as conn:
        status = await market_service.status(conn)
    feed = getattr(request.app.state, "feed", None)
    status["feed"] = feed.stats.as_dict() if feed is not None else None
    return Response(encoders.json(status), media_type="application/json")


@router.post(
    "/market/imports",
    response_model=schemas.ImportSummary,
    responses={**_ERRORS, **error_responses(409)},
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_csv(
    request: Request,
    ticker: Annotated[
        str | None, Query(description="the ticker of a single-security file (Yahoo layout)")
    ] = None,
    layout: Literal["auto", "yahoo", "stooq"] = "auto",
) -> schemas.ImportSummary:
    """Import daily OHLCV bars from a CSV body (Yahoo or Stooq layout): rows are
    validated, bad ones rejected with a reason, good ones merged idempotently; the derived
    statistics are refreshed and ``market.eod.completed`` is published."""
    await authorize(request, "admin")
    body = await request.body()
    if len(body) > import_service.MAX_IMPORT_BYTES:
        raise InvalidImportError("The file is larger than 64 MiB; split it.")
    async with request_unit(request) as unit:
        summary = await import_service.import_csv(
            unit, body.decode("utf-8-sig", errors="replace"), ticker=ticker, layout=layout
        )
    cache: ResponseCache = request.app.state.response_cache
    await cache.invalidate(EOD_TAG)
    return summary

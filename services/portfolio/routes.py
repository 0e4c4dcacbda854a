"""HTTP routes of the portfolio service: thin handlers over :mod:`service`.

``/portfolio...`` is the caller's default portfolio (the API contract's routes);
``/portfolios/{portfolio_id}...`` any of theirs. Changes answer with the portfolio's new
``ETag``; a retry with the same ``Idempotency-Key`` gets the stored answer with
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from services.portfolio import domain, service
from services.portfolio.deps import IdempotencyKey, IfMatch, LedgerStatesDep, Market, XRaySources
from services.portfolio.errors import InvalidImportError
from services.portfolio.schemas import (
    TICKER_PATTERN,
    ImpactPreview,
    ImportReport,
    Performance,
    PortfolioCreate,
    PortfolioOut,
    PortfolioPage,
    PortfolioUpdate,
    PortfolioValuation,
    PortfolioXRay,
    PositionCreate,
    RebalanceProposal,
    RebalanceRequest,
    Recorded,
    ReversalCreate,
    TransactionCreate,
    TransactionOut,
    TransactionPage,
)
from shared.deps import CursorKeyDep, DbConn, Viewer
from shared.errors import PayloadTooLargeError, ValidationFailedError, error_responses

router = APIRouter(prefix="/api/v1", tags=["portfolio"])

Limit = Query(50, ge=1, le=200)
Cursor = Query(None, max_length=500)
_READ = error_responses(401, 403, 404, 422)
_CHANGE = error_responses(401, 403, 404, 409, 412, 422, 428, 503)


def _answer(answer: service.Answer) -> Response:
    """A change's answer: its body is already encoded (and stored for retries)."""
    headers = {"ETag": answer.etag} if answer.etag else {}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        answer.body, status_code=answer.status, headers=headers, media_type="application/json"
    )


def _valued(valued: PortfolioValuation) -> Response:
    """A valuation, encoded once here (FastAPI would validate its hundreds of positions
    again before encoding; test_routes checks the body against the model)."""
    return Response(
        valued.model_dump_json(),
        media_type="application/json",
        headers={"ETag": domain.etag(valued.version)},
    )


def _with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = domain.etag(version)


# --- portfolios -----------------------------------------------------------------------


@router.get("/portfolio", response_model=PortfolioValuation, responses=_READ)
async def get_default_portfolio(
    conn: DbConn, caller: Viewer, ledgers: LedgerStatesDep, market: Market
) -> Response:
    """The caller's default portfolio (made on first use), valued at live quotes."""
    return _valued(await service.valuation(conn, caller.subject, None, market, ledgers))


@router.post(
    "/portfolio",
    response_model=PortfolioOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422),
)
async def create_portfolio(
    conn: DbConn, caller: Viewer, body: PortfolioCreate, key: IdempotencyKey = None
) -> Response:
    """Create a portfolio owned by the caller (opening cash becomes a DEPOSIT)."""
    idem = service.idempotency(key, "create", "-", body)
    return _answer(await service.create_portfolio(conn, caller.subject, body, idem))


@router.get("/portfolios", response_model=PortfolioPage, responses=_READ)
async def list_portfolios(
    conn: DbConn,
    caller: Viewer,
    cursor_key: CursorKeyDep,
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> PortfolioPage:
    """The caller's portfolios, oldest first."""
    items, next_cursor = await service.list_portfolios(
        conn, caller.subject, cursor=cursor, limit=limit, cursor_key=cursor_key
    )
    return PortfolioPage(items=[PortfolioOut.of(p) for p in items], next_cursor=next_cursor)


@router.get("/portfolios/{portfolio_id}", response_model=PortfolioValuation, responses=_READ)
async def get_portfolio(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    portfolio_id: UUID,
) -> Response:
    """One of the caller's portfolios, valued at live quotes."""
    return _valued(await service.valuation(conn, caller.subject, portfolio_id, market, ledgers))


@router.patch("/portfolios/{portfolio_id}", response_model=PortfolioOut, responses=_CHANGE)
async def rename_portfolio(
    conn: DbConn,
    caller: Viewer,
    portfolio_id: UUID,
    body: PortfolioUpdate,
    response: Response,
    if_match: IfMatch = None,
) -> PortfolioOut:
    """Rename a portfolio (needs ``If-Match``)."""
    renamed = await service.rename_portfolio(conn, caller.subject, portfolio_id, body, if_match)
    _with_etag(response, renamed.version)
    return PortfolioOut.of(renamed)


@router.get("/portfolio/performance", response_model=Performance, responses=_READ)
async def get_default_performance(conn: DbConn, caller: Viewer, market: Market) -> Performance:
    """The default portfolio's returns (TWR and XIRR) over 1M, 3M, YTD, 1Y and since
    inception, with the daily value series."""
    return await service.performance(conn, caller.subject, None, market)


@router.get("/portfolios/{portfolio_id}/performance", response_model=Performance, responses=_READ)
async def get_performance(
    conn: DbConn, caller: Viewer, market: Market, portfolio_id: UUID
) -> Performance:
    """A portfolio's returns and daily value series."""
    return await service.performance(conn, caller.subject, portfolio_id, market)


# --- positions and the ledger -----------------------------------------------------------


@router.post(
    "/portfolio/positions",
    response_model=Recorded,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE,
)
async def add_position(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    body: PositionCreate,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Buy into the default portfolio at a given price or market's latest quote."""
    idem = service.idempotency(key, "buy", "default", body)
    return _answer(
        await service.buy(conn, caller.subject, None, body, if_match, idem, market, ledgers)
    )


@router.post(
    "/portfolios/{portfolio_id}/positions",
    response_model=Recorded,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE,
)
async def add_position_to(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    portfolio_id: UUID,
    body: PositionCreate,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Buy into one of the caller's portfolios."""
    idem = service.idempotency(key, "buy", str(portfolio_id), body)
    return _answer(
        await service.buy(conn, caller.subject, portfolio_id, body, if_match, idem, market, ledgers)
    )


@router.get("/portfolio/transactions", response_model=TransactionPage, responses=_READ)
async def list_default_transactions(
    conn: DbConn,
    caller: Viewer,
    cursor_key: CursorKeyDep,
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> TransactionPage:
    """The default portfolio's ledger, newest first."""
    items, next_cursor = await service.list_transactions(
        conn, caller.subject, None, cursor=cursor, limit=limit, cursor_key=cursor_key
    )
    return TransactionPage(items=[TransactionOut.of(e) for e in items], next_cursor=next_cursor)


@router.get(
    "/portfolios/{portfolio_id}/transactions", response_model=TransactionPage, responses=_READ
)
async def list_transactions(
    conn: DbConn,
    caller: Viewer,
    cursor_key: CursorKeyDep,
    portfolio_id: UUID,
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> TransactionPage:
    """A portfolio's ledger, newest first."""
    items, next_cursor = await service.list_transactions(
        conn, caller.subject, portfolio_id, cursor=cursor, limit=limit, cursor_key=cursor_key
    )
    return TransactionPage(items=[TransactionOut.of(e) for e in items], next_cursor=next_cursor)


@router.post(
    "/portfolio/transactions",
    response_model=Recorded,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE,
)
async def record_default_transaction(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    body: TransactionCreate,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Record a BUY, SELL, DEPOSIT, WITHDRAWAL, DIVIDEND, FEE or SPLIT in the default portfolio."""
    idem = service.idempotency(key, "record", "default", body)
    return _answer(
        await service.record_transaction(conn, caller.subject, None, body, if_match, idem, ledgers)
    )


@router.post(
    "/portfolios/{portfolio_id}/transactions",
    response_model=Recorded,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE,
)
async def record_transaction(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    portfolio_id: UUID,
    body: TransactionCreate,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Record a transaction in one of the caller's portfolios."""
    idem = service.idempotency(key, "record", str(portfolio_id), body)
    return _answer(
        await service.record_transaction(
            conn, caller.subject, portfolio_id, body, if_match, idem, ledgers
        )
    )


@router.post(
    "/portfolios/{portfolio_id}/transactions/{transaction_id}/reversal",
    response_model=Recorded,
    status_code=status.HTTP_201_CREATED,
    responses=_CHANGE,
)
async def reverse_transaction(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    portfolio_id: UUID,
    transaction_id: UUID,
    body: ReversalCreate,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Cancel a transaction with a reversing entry (the ledger is never edited)."""
    idem = service.idempotency(key, "reverse", f"{portfolio_id}/{transaction_id}", body)
    return _answer(
        await service.reverse_transaction(
            conn, caller.subject, portfolio_id, transaction_id, body, if_match, idem, ledgers
        )
    )


# --- rebalancing ------------------------------------------------------------------------------


@router.put("/portfolio/rebalance", response_model=RebalanceProposal, responses=_CHANGE)
async def rebalance_default(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    sources: XRaySources,
    body: RebalanceRequest,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """A rebalance proposal for the default portfolio (explicit or equal weights, the
    latest recommendations, or an optimiser; under the constraints), with the risk x-ray
    before and after; with ``apply: true`` its trades are recorded in one transaction
    (needs ``If-Match`` and ``Idempotency-Key``)."""
    idem = service.idempotency(key, "rebalance", "default", body)
    return _answer(
        await service.rebalance(
            conn, caller.subject, None, body, if_match, idem, market, ledgers, sources
        )
    )


@router.put(
    "/portfolios/{portfolio_id}/rebalance", response_model=RebalanceProposal, responses=_CHANGE
)
async def rebalance(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    sources: XRaySources,
    portfolio_id: UUID,
    body: RebalanceRequest,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """A rebalance proposal for one of the caller's portfolios (see the default's)."""
    idem = service.idempotency(key, "rebalance", str(portfolio_id), body)
    return _answer(
        await service.rebalance(
            conn, caller.subject, portfolio_id, body, if_match, idem, market, ledgers, sources
        )
    )


# --- risk x-ray and impact preview --------------------------------------------------------

MaxPositionWeight = Query(
    None,
    gt=0,
    le=1,
    max_digits=8,
    decimal_places=6,
    description="Concentration limit of one position"
    " (default: PORTFOLIO_XRAY_MAX_POSITION_WEIGHT).",
)
MaxSectorWeight = Query(
    None,
    gt=0,
    le=1,
    max_digits=8,
    decimal_places=6,
    description="Concentration limit of one sector (default: PORTFOLIO_XRAY_MAX_SECTOR_WEIGHT).",
)


@router.get("/portfolio/xray", response_model=PortfolioXRay, responses=_READ)
async def get_default_xray(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    sources: XRaySources,
    max_position_weight: Decimal | None = MaxPositionWeight,
    max_sector_weight: Decimal | None = MaxSectorWeight,
) -> PortfolioXRay:
    """The default portfolio's risk x-ray: concentration beyond the limits, volatility,
    beta and maximum drawdown of the holdings, and the holdings whose latest call is SELL."""
    limits = sources.settings.limits_for(max_position_weight, max_sector_weight)
    return await service.xray(conn, caller.subject, None, limits, market, ledgers, sources)


@router.get("/portfolios/{portfolio_id}/xray", response_model=PortfolioXRay, responses=_READ)
async def get_xray(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    sources: XRaySources,
    portfolio_id: UUID,
    max_position_weight: Decimal | None = MaxPositionWeight,
    max_sector_weight: Decimal | None = MaxSectorWeight,
) -> PortfolioXRay:
    """One of the caller's portfolios' risk x-ray (see the default's)."""
    limits = sources.settings.limits_for(max_position_weight, max_sector_weight)
    return await service.xray(conn, caller.subject, portfolio_id, limits, market, ledgers, sources)


_IMPACT = error_responses(401, 403, 404, 409, 422, 503)
ImpactTicker = Query(None, description="Follow this ticker's latest live call.")
ImpactId = Query(None, description="Follow this call of the latest live run.")
ImpactStep = Query(
    Decimal("0.02"),
    gt=0,
    le=1,
    max_digits=8,
    decimal_places=6,
    description="A BUY adds this fraction of total value (within the position limit and cash).",
)
ImpactFractional = Query(False, description="Fractional shares (6 places) or whole ones.")


def _impact_ask(
    ticker: str | None,
    recommendation_id: UUID | None,
    step: Decimal,
    fractional: bool,
    sources: XRaySources,
    max_position_weight: Decimal | None,
    max_sector_weight: Decimal | None,
) -> service.ImpactAsk:
    if (ticker is None) == (recommendation_id is None):
        raise ValidationFailedError("Give exactly one of ticker and recommendation_id.")
    if ticker is not None:
        ticker = ticker.upper()
        if not re.fullmatch(TICKER_PATTERN, ticker):
            raise ValidationFailedError("Not a ticker.", details={"ticker": ticker})
    return service.ImpactAsk(
        ticker=ticker,
        recommendation_id=recommendation_id,
        step=step,
        fractional=fractional,
        limits=sources.settings.limits_for(max_position_weight, max_sector_weight),
    )


@router.get("/portfolio/impact", response_model=ImpactPreview, responses=_IMPACT)
async def get_default_impact(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    sources: XRaySources,
    ticker: str | None = ImpactTicker,
    recommendation_id: UUID | None = ImpactId,
    step: Decimal = ImpactStep,
    fractional: bool = ImpactFractional,
    max_position_weight: Decimal | None = MaxPositionWeight,
    max_sector_weight: Decimal | None = MaxSectorWeight,
) -> ImpactPreview:
    """What following one latest recommendation would do to the default portfolio's
    weights and x-ray: a SELL sells the position, a BUY adds ``step`` of total value.
    A preview: nothing is written."""
    ask = _impact_ask(
        ticker, recommendation_id, step, fractional, sources, max_position_weight, max_sector_weight
    )
    return await service.impact(conn, caller.subject, None, ask, market, ledgers, sources)


@router.get("/portfolios/{portfolio_id}/impact", response_model=ImpactPreview, responses=_IMPACT)
async def get_impact(
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    market: Market,
    sources: XRaySources,
    portfolio_id: UUID,
    ticker: str | None = ImpactTicker,
    recommendation_id: UUID | None = ImpactId,
    step: Decimal = ImpactStep,
    fractional: bool = ImpactFractional,
    max_position_weight: Decimal | None = MaxPositionWeight,
    max_sector_weight: Decimal | None = MaxSectorWeight,
) -> ImpactPreview:
    """The impact preview on one of the caller's portfolios (see the default's)."""
    ask = _impact_ask(
        ticker, recommendation_id, step, fractional, sources, max_position_weight, max_sector_weight
    )
    return await service.impact(conn, caller.subject, portfolio_id, ask, market, ledgers, sources)


# --- CSV export and import ----------------------------------------------------------------

MAX_IMPORT_BYTES = 8 * 1024 * 1024
_CSV_BODY = {"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}}
_CSV_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The ledger as CSV."}
}


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/portfolio/transactions/export", responses={**_READ, **_CSV_ANSWER})
async def export_default_transactions(conn: DbConn, caller: Viewer) -> Response:
    """The default portfolio's whole ledger as CSV (the layout the import reads)."""
    return _csv(await service.export_transactions(conn, caller.subject, None), "transactions")


@router.get("/portfolios/{portfolio_id}/transactions/export", responses={**_READ, **_CSV_ANSWER})
async def export_transactions(conn: DbConn, caller: Viewer, portfolio_id: UUID) -> Response:
    """A portfolio's whole ledger as CSV."""
    text = await service.export_transactions(conn, caller.subject, portfolio_id)
    return _csv(text, f"transactions-{portfolio_id}")


ImportLayout = Annotated[
    Literal["native", "schwab"] | None,
    Query(
        description="The file's layout: the documented one, or Schwab's transactions"
        " export. Absent: the one the header shows."
    ),
]


async def _csv_body(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise PayloadTooLargeError("The file is larger than 8 MiB; split it.")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidImportError("The file is not UTF-8 text.") from None


@router.post(
    "/portfolio/transactions/import",
    response_model=ImportReport,
    responses={**_CHANGE, **error_responses(413)},
    openapi_extra=_CSV_BODY,
)
async def import_default_transactions(
    request: Request,
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    dry_run: bool = False,
    layout: ImportLayout = None,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Import transactions into the default portfolio from a CSV body (the documented
    layout, or Schwab's transactions export): a per-row report; duplicates, unsupported
    and bad rows are left out."""
    text = await _csv_body(request)
    idem = service.idempotency_of_text(key, "import", f"default:{layout}", text)
    answer = await service.import_transactions(
        conn,
        caller.subject,
        None,
        text,
        layout=layout,
        dry_run=dry_run,
        if_match=if_match,
        idem=idem,
        ledgers=ledgers,
    )
    return _answer(answer)


@router.post(
    "/portfolios/{portfolio_id}/transactions/import",
    response_model=ImportReport,
    responses={**_CHANGE, **error_responses(413)},
    openapi_extra=_CSV_BODY,
)
async def import_transactions(
    request: Request,
    conn: DbConn,
    caller: Viewer,
    ledgers: LedgerStatesDep,
    portfolio_id: UUID,
    dry_run: bool = False,
    layout: ImportLayout = None,
    if_match: IfMatch = None,
    key: IdempotencyKey = None,
) -> Response:
    """Import transactions into one of the caller's portfolios from a CSV body."""
    text = await _csv_body(request)
    idem = service.idempotency_of_text(key, "import", f"{portfolio_id}:{layout}", text)
    answer = await service.import_transactions(
        conn,
        caller.subject,
        portfolio_id,
        text,
        layout=layout,
        dry_run=dry_run,
        if_match=if_match,
        idem=idem,
        ledgers=ledgers,
    )
    return _answer(answer)

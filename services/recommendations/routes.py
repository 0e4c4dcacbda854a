"""HTTP routes of the recommendations service (thin: parse, call the service, answer)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from services.recommendations import service
from services.recommendations.domain import spec as s
from services.recommendations.domain import track_record as tr
from services.recommendations.domain.calls import Action
from services.recommendations.schemas import (
    HistoryPage,
    LedgerBreak,
    LedgerVerification,
    RecommendationPage,
    RecommendationResponse,
    ReplayResponse,
    RunPage,
    RunRequest,
    RunResponse,
    TrackRecordResponse,
)
from shared.cache import CachedBody, ResponseCache, cached_response
from shared.deps import Analyst, CursorKeyDep, DbConn, Viewer
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1", tags=["recommendations"])

Ticker = Annotated[str | None, Query(pattern=r"^[A-Z]{1,5}([.-][A-Z])?$")]


LIST_TTL_SECONDS = 60.0
TRACK_RECORD_TTL_SECONDS = 600.0
LATEST_TAG = "latest"


@router.get(
    "/recommendations",
    response_model=RecommendationPage,
    responses=error_responses(401, 403, 422),
)
async def list_recommendations(
    request: Request,
    conn: DbConn,
    _: Viewer,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    action: Action | None = None,
    ticker: Ticker = None,
    sector: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    sort: Literal["score", "confidence"] = "score",
) -> Response:
    """The latest run's calls, best score (or confidence) first, with their disclosures.
    Cached (Redis, shared by replicas) until the next run, at most a minute."""

    async def build() -> CachedBody:
        run, rows, next_cursor = await service.latest_recommendations(
            conn,
            limit=limit,
            cursor=cursor,
            cursor_key=cursor_key,
            action=action,
            ticker=ticker,
            sector=sector,
            min_confidence=min_confidence,
            sort=sort,
        )
        page = RecommendationPage(
            run_id=run.id if run else None,
            as_of=run.trading_day if run else None,
            items=[RecommendationResponse.of(r) for r in rows],
            next_cursor=next_cursor,
        )
        return CachedBody.build(page.model_dump_json().encode())

    cache: ResponseCache = request.app.state.read_cache
    query = request.scope.get("query_string", b"").decode("latin-1")
    body = await cache.get_or_build(f"list?{query}", LIST_TTL_SECONDS, build, tags=(LATEST_TAG,))
    return cached_response(request, body)


@router.get(
    "/recommendations/history",
    response_model=HistoryPage,
    responses=error_responses(401, 403, 422),
)
async def history(
    conn: DbConn,
    _: Viewer,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    ticker: Ticker = None,
    action: Action | None = None,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    run_id: UUID | None = None,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
    hypothetical: bool | None = None,
) -> HistoryPage:
    """Every published call, newest as-of date first: by ticker, action, as-of range
    (``from``/``to``), run, model version, live or hypothetical."""
    rows, next_cursor = await service.history(
        conn,
        limit=limit,
        cursor=cursor,
        cursor_key=cursor_key,
        ticker=ticker,
        action=action,
        since=since,
        until=until,
        run_id=run_id,
        model_version=model_version,
        hypothetical=hypothetical,
    )
    return HistoryPage(items=[RecommendationResponse.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/recommendations/track-record",
    response_model=TrackRecordResponse,
    responses=error_responses(401, 403, 422),
)
async def track_record(
    request: Request,
    conn: DbConn,
    _: Viewer,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """How every call whose horizon has passed did: live and hypothetical apart. Cached
    like the list (outcomes change only when a run is judged)."""

    async def build() -> CachedBody:
        record = await service.track_record_of(conn, model_version=model_version)
        body = TrackRecordResponse(
            live=record["live"],
            hypothetical=record["hypothetical"],
            benchmark=tr.BENCHMARK,
            hit_rules=tr.HIT_RULES,
            methodology=tr.METHODOLOGY,
        )
        return CachedBody.build(body.model_dump_json().encode())

    cache: ResponseCache = request.app.state.read_cache
    query = request.scope.get("query_string", b"").decode("latin-1")
    cached = await cache.get_or_build(
        f"track-record?{query}", TRACK_RECORD_TTL_SECONDS, build, tags=(LATEST_TAG,)
    )
    return cached_response(request, cached)


@router.post(
    "/recommendations/runs",
    response_model=RunResponse,
    status_code=202,
    responses=error_responses(401, 403, 409, 422),
)
async def request_run(conn: DbConn, caller: Analyst, body: RunRequest | None = None) -> RunResponse:
    """Queue a run now (analyst or admin); it runs in the background: follow it at
    ``GET /recommendations/runs/{id}``. 409 when the day asked for already has a run."""
    run = await service.request_run(
        conn,
        requested_by=caller.subject,
        as_of=body.as_of if body else None,
        model_version=s.CURRENT.version,
    )
    return RunResponse.of(run)


@router.get(
    "/recommendations/runs",
    response_model=RunPage,
    responses=error_responses(401, 403, 422),
)
async def list_runs(
    conn: DbConn,
    _: Viewer,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RunPage:
    """Runs, newest first, with status, timings and counts."""
    rows, next_cursor = await service.list_runs(
        conn, limit=limit, cursor=cursor, cursor_key=cursor_key
    )
    return RunPage(items=[RunResponse.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/recommendations/runs/{run_id}",
    response_model=RunResponse,
    responses=error_responses(401, 403, 404, 422),
)
async def get_run(conn: DbConn, _: Viewer, run_id: UUID) -> RunResponse:
    return RunResponse.of(await service.get_run(conn, run_id))


@router.get(
    "/recommendations/ledger/verify",
    response_model=LedgerVerification,
    responses=error_responses(401, 403, 404, 422),
)
async def verify_ledger(
    conn: DbConn,
    _: Viewer,
    cursor_key: CursorKeyDep,
    limit: Annotated[int, Query(ge=1, le=service.VERIFY_MAX)] = service.VERIFY_DEFAULT,
    after_seq: Annotated[int | None, Query(ge=0, le=2**62)] = None,  # a bigint, with room
    run_id: UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> LedgerVerification:
    """Recompute the hash chain over one range of published calls (``limit`` rows from
    the start, after ``after_seq``, one run's rows, or after a ``cursor``) from the stored
    hash of the row before it, and report the first break; ``next_cursor`` continues."""
    result = await service.verify_ledger(
        conn, cursor_key=cursor_key, limit=limit, after_seq=after_seq, run_id=run_id, cursor=cursor
    )
    return LedgerVerification(
        intact=result.intact,
        checked=result.checked,
        first_seq=result.first_seq,
        last_seq=result.last_seq,
        last_hash=result.last_hash,
        first_break=LedgerBreak.of(result.first_break) if result.first_break else None,
        ledger_last_seq=result.ledger_last_seq,
        next_cursor=result.next_cursor,
    )


@router.get(
    "/recommendations/{recommendation_id}",
    response_model=RecommendationResponse,
    responses=error_responses(401, 403, 404, 422),
)
async def get_recommendation(
    conn: DbConn, _: Viewer, recommendation_id: UUID
) -> RecommendationResponse:
    return RecommendationResponse.of(await service.get_recommendation(conn, recommendation_id))


@router.get(
    "/recommendations/{recommendation_id}/replay",
    response_model=ReplayResponse,
    responses=error_responses(401, 403, 404, 422),
)
async def replay_recommendation(conn: DbConn, _: Viewer, recommendation_id: UUID) -> ReplayResponse:
    """Make the call again from the inputs recorded for it and show it is identical."""
    result = await service.replay(conn, recommendation_id)
    return ReplayResponse(
        identical=result.identical,
        inputs_hash_matches=result.inputs_hash_matches,
        differences=result.differences,
        original=RecommendationResponse.of(result.original),
        replayed=RecommendationResponse.of(result.replayed) if result.replayed else None,
    )

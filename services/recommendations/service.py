"""Use cases of the recommendations service: publishing a run into the ledger, reading
calls and runs, verifying the ledger, replaying a call.

Every function takes a connection and runs in its caller's transaction: a request's (routes)
or the runner's (background work); none opens one or takes the pool.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

import asyncpg

from services.recommendations import events, repository
from services.recommendations.domain import ledger, publication, track_record
from services.recommendations.domain.calibration import Calibration
from services.recommendations.domain.calls import (
    Action,
    Recommendation,
    RunRecord,
    action_changes,
    chunks,
)
from services.recommendations.domain.factors import Panel
from services.recommendations.domain.model import Call
from services.recommendations.errors import (
    RecommendationNotFoundError,
    RunExistsError,
    RunNotFoundError,
)
from services.recommendations.schemas import (
    HISTORY_CURSOR,
    LATEST_CURSOR,
    RUNS_CURSOR,
    VERIFY_CURSOR,
    HistoryPosition,
    LatestPosition,
    RunPosition,
    VerifyPosition,
)
from shared.errors import ValidationFailedError
from shared.messaging import Event, enqueue
from shared.pagination import CursorKey, InvalidCursorError


@dataclass(frozen=True)
class Published:
    run: RunRecord
    recommendations: list[Recommendation]
    changed: int


async def publish_run(
    conn: asyncpg.Connection,
    *,
    run_id: UUID,
    kind: str,
    calls: Sequence[Call],
    calibration: Calibration,
    model_version: str,
    hypothetical: bool = False,
    universe: int | None = None,
    requested_by: str | None = None,
    trigger_event: UUID | None = None,
    timings: dict[str, float] | None = None,
    queued: bool = False,
) -> Published | None:
    """Claim the run's trading day, append its calls to the ledger, complete the run and
    (for a live run) queue ``recommendations.run.completed`` -- all in the caller's
    transaction, so either all of it exists or none.

    Returns None, changing nothing, when a run of that trading day (live or hypothetical)
    exists already: redelivered events and a second replica end here. A ``queued`` run
    (``POST /runs``) is started instead of inserted, and marked failed in that case.
    """
    if not calls:
        raise ValueError("a run has at least one call")
    trading_day = calls[0].as_of
    if queued:
        existing = await repository.run_for_day(conn, trading_day, hypothetical=hypothetical)
        if existing is not None and existing.id != run_id:
            await repository.fail_run(
                conn, run_id, error=f"{trading_day} already has run {existing.id}"
            )
            return None
        if not await repository.start_queued_run(conn, run_id, trading_day=trading_day):
            return None
    elif not await repository.claim_run(
        conn,
        run_id,
        kind=kind,
        trading_day=trading_day,
        hypothetical=hypothetical,
        model_version=model_version,
        requested_by=requested_by,
        trigger_event=trigger_event,
    ):
        return None
    generated_at = datetime.now(UTC)
    last_seq, last_hash = await repository.lock_ledger_tail(conn)
    # Building the rows is CPU work too: in the thread with the hashing.
    chained = await asyncio.to_thread(
        lambda: publication.chain(
            publication.to_recommendations(
                calls, run_id=run_id, generated_at=generated_at, hypothetical=hypothetical
            ),
            prev_hash=last_hash,
            prev_seq=last_seq,
        )
    )
    await repository.append(conn, chained)
    changes: list[tuple[Recommendation, Action | None]] = []
    if not hypothetical:
        previous = await repository.previous_live_actions(
            conn, [r.ticker for r in chained], before=trading_day
        )
        changes = action_changes(chained, previous)
        await _enqueue_changes(conn, run_id, model_version, chained, changes, generated_at)
    await repository.complete_run(
        conn,
        run_id,
        universe=universe if universe is not None else len(chained),
        called=len(chained),
        changed=len(changes),
        calibration=calibration.to_json(),
        timings=timings or {},
    )
    run = await repository.get_run(conn, run_id)
    assert run is not None  # inserted above, in this transaction
    return Published(run, chained, len(changes))


async def _enqueue_changes(
    conn: asyncpg.Connection,
    run_id: UUID,
    model_version: str,
    rows: Sequence[Recommendation],
    changes: Sequence[tuple[Recommendation, Action | None]],
    generated_at: datetime,
) -> None:
    payloads = [
        events.ActionChanged(
            recommendation_id=rec.id,
            ticker=rec.ticker,
            action=rec.action.value,
            previous_action=before.value if before else None,
            confidence=float(rec.confidence),
            price_at_call=float(rec.price_at_call),
            target_price=float(rec.target_price) if rec.target_price is not None else None,
        )
        for rec, before in changes
    ]
    parts = chunks(payloads, events.MAX_CHANGES_PER_EVENT)
    for number, part in enumerate(parts, start=1):
        await enqueue(
            conn,
            events.RUN_COMPLETED,
            Event[events.RunCompleted](
                event_type=events.RUN_COMPLETED,
                schema_version=events.RUN_COMPLETED_VERSION,
                source=events.SOURCE,
                data=events.RunCompleted(
                    run_id=run_id,
                    as_of=rows[0].as_of,
                    model_version=model_version,
                    generated_at=generated_at,
                    total_recommendations=len(rows),
                    part=number,
                    parts=len(parts),
                    changes=list(part),
                ),
            ),
        )


# --- runs ---------------------------------------------------------------------------------


async def request_run(
    conn: asyncpg.Connection, *, requested_by: str, as_of: date | None, model_version: str
) -> RunRecord:
    """Queue an on-demand run (the runner takes it from the outbox event). Requests for
    the same day at once: the runs index lets one in, the others wait for it and get 409."""
    run = await repository.queue_run(
        conn,
        uuid.uuid4(),
        trading_day=as_of,
        model_version=model_version,
        requested_by=requested_by,
    )
    if run is None:
        assert as_of is not None  # a run without a day never conflicts
        existing = await repository.run_for_day(conn, as_of, hypothetical=False)
        raise RunExistsError(
            f"{as_of} already has a run.",
            details={"run_id": str(existing.id) if existing else None},
        )
    await enqueue(
        conn,
        events.RUN_REQUESTED,
        Event[events.RunRequested](
            event_type=events.RUN_REQUESTED,
            source=events.SOURCE,
            data=events.RunRequested(run_id=run.id, as_of=as_of),
        ),
    )
    return run


async def list_runs(
    conn: asyncpg.Connection, *, limit: int, cursor: str | None, cursor_key: CursorKey
) -> tuple[list[RunRecord], str | None]:
    after = None
    if cursor:
        position = RUNS_CURSOR.decode(cursor_key, cursor)
        after = (position.started_at, position.id)
    rows = await repository.list_runs(conn, limit=limit + 1, after=after)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = RunPosition(started_at=rows[-1].started_at, id=rows[-1].id)
        next_cursor = RUNS_CURSOR.encode(cursor_key, last)
    return rows, next_cursor


# --- reading ------------------------------------------------------------------------------


async def latest_recommendations(
    conn: asyncpg.Connection,
    *,
    limit: int,
    cursor: str | None,
    cursor_key: CursorKey,
    action: Action | None,
    ticker: str | None,
    sector: str | None,
    min_confidence: float | None,
    sort: Literal["score", "confidence"],
) -> tuple[RunRecord | None, list[Recommendation], str | None]:
    """The latest live run's calls (the latest hypothetical run's before any live one)."""
    run = await repository.latest_completed_run(conn, hypothetical=False)
    if run is None:
        run = await repository.latest_completed_run(conn, hypothetical=True)
    if run is None:
        if cursor:
            raise InvalidCursorError()
        return None, [], None
    after = None
    if cursor:
        position = LATEST_CURSOR.decode(cursor_key, cursor)
        if position.run != run.id or position.sort != sort:
            raise InvalidCursorError("The cursor belongs to another run or sort; start again.")
        after = (position.value, position.ticker)
    rows = await repository.list_run_recommendations(
        conn,
        run.id,
        limit=limit + 1,
        after=after,
        action=action,
        ticker=ticker,
        sector=sector,
        min_confidence=Decimal(str(min_confidence)) if min_confidence is not None else None,
        sort=sort,
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        value = last.score if sort == "score" else float(last.confidence)
        next_cursor = LATEST_CURSOR.encode(
            cursor_key, LatestPosition(run=run.id, sort=sort, value=value, ticker=last.ticker)
        )
    return run, rows, next_cursor


async def history(
    conn: asyncpg.Connection,
    *,
    limit: int,
    cursor: str | None,
    cursor_key: CursorKey,
    ticker: str | None,
    action: Action | None,
    since: date | None,
    until: date | None,
    run_id: UUID | None,
    model_version: str | None,
    hypothetical: bool | None,
) -> tuple[list[Recommendation], str | None]:
    after = None
    if cursor:
        position = HISTORY_CURSOR.decode(cursor_key, cursor)
        after = (position.as_of, position.seq)
    rows = await repository.history(
        conn,
        limit=limit + 1,
        after=after,
        ticker=ticker,
        action=action,
        since=since,
        until=until,
        run_id=run_id,
        model_version=model_version,
        hypothetical=hypothetical,
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last_call = HistoryPosition(as_of=rows[-1].as_of, seq=rows[-1].seq)
        next_cursor = HISTORY_CURSOR.encode(cursor_key, last_call)
    return rows, next_cursor


async def judge(conn: asyncpg.Connection, panel: Panel) -> int:
    """Record the outcome of every call whose horizon has passed within ``panel``."""
    first = panel.sessions[0].astype(object)
    last = panel.sessions[-1].astype(object)
    pending = await repository.pending_outcomes(conn, since=first, until=last)
    found = await asyncio.to_thread(track_record.outcomes, panel, pending)
    await repository.insert_outcomes(conn, found)
    return len(found)


async def judge_published(
    conn: asyncpg.Connection, panel: Panel, rows: Sequence[Recommendation]
) -> list[track_record.Outcome]:
    """Record the outcomes of ``rows`` (calls just published) that ``panel`` can judge."""
    pending = [
        track_record.pending_of(r.id, r.ticker, r.as_of, r.action, r.horizon_days, r.factors)
        for r in rows
    ]
    found = await asyncio.to_thread(track_record.outcomes, panel, pending)
    await repository.insert_outcomes(conn, found)
    return found


async def record_outcomes(conn: asyncpg.Connection, found: Sequence[track_record.Outcome]) -> None:
    """Record outcomes computed beforehand (the backtest judges its calls in its thread)."""
    await repository.insert_outcomes(conn, found)


async def track_record_of(
    conn: asyncpg.Connection, *, model_version: str | None
) -> dict[str, dict[str, object]]:
    """The record of every judged call, live and hypothetical apart."""
    out = {}
    for name, hypothetical in (("live", False), ("hypothetical", True)):
        rows = await repository.judged(conn, hypothetical=hypothetical, model_version=model_version)
        out[name] = await asyncio.to_thread(track_record.record, rows)
    return out


async def get_recommendation(conn: asyncpg.Connection, rec_id: UUID) -> Recommendation:
    rec = await repository.get_recommendation(conn, rec_id)
    if rec is None:
        raise RecommendationNotFoundError(f"No recommendation {rec_id}.")
    return rec


async def get_run(conn: asyncpg.Connection, run_id: UUID) -> RunRecord:
    run = await repository.get_run(conn, run_id)
    if run is None:
        raise RunNotFoundError(f"No run {run_id}.")
    return run


# --- the ledger ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    intact: bool  # no break in the rows checked
    checked: int
    first_seq: int | None  # the first row checked
    last_seq: int | None  # the last row found intact
    last_hash: str  # the chain's head after the rows found intact
    first_break: ledger.Break | None
    ledger_last_seq: int  # the ledger's last row when the check started
    next_cursor: str | None  # where the next range starts; None at the end or a break


# A range is fetched in windows of VERIFY_WINDOW rows; the next window is read while the
# worker thread hashes the current one. The default and largest range are sized from the
# measured rate (docs/performance.md, "Verifying the ledger") to answer well within the
# gateway's 10 s upstream timeout; the time budget bounds a range on a loaded machine too
# (it then ends early, with a cursor, after the window that spent the budget).
VERIFY_WINDOW = 10_000
VERIFY_DEFAULT = 50_000
VERIFY_MAX = 100_000
VERIFY_BUDGET_SECONDS = 4.0
NO_ROW = UUID(int=0)


async def verify_ledger(
    conn: asyncpg.Connection,
    *,
    cursor_key: CursorKey,
    limit: int = VERIFY_DEFAULT,
    after_seq: int | None = None,
    run_id: UUID | None = None,
    cursor: str | None = None,
) -> Verification:
    """Recompute the chain over one range of rows and report its first break.

    The range is the ``limit`` rows after ``after_seq`` (default 0, the start), the rows
    of run ``run_id``, or the range after the one a ``cursor`` ended. It starts from the
    *stored* hash of the row before it, so consecutive ranges check the chain across their
    boundary: a row edited at the end of one range, hashes recomputed, breaks the next
    range's first row. A cursor also carries the head the previous range computed; if the
    row before the range no longer has that hash, that row changed in between.
    """
    if sum(x is not None for x in (after_seq, run_id, cursor)) > 1:
        raise ValidationFailedError(
            "Give at most one of after_seq, run_id and cursor.", details={"field": "range"}
        )
    head = await repository.ledger_head(conn)
    start, end, expected = after_seq or 0, head, None  # the range is (start, end], capped
    if cursor is not None:
        position = VERIFY_CURSOR.decode(cursor_key, cursor)
        start, expected = position.after_seq, position.head_hash
    elif run_id is not None:
        bounds = await repository.run_seq_range(conn, run_id)
        if bounds is None:
            await get_run(conn, run_id)  # 404 for an unknown run
            bounds = (1, 0)  # a run without rows (queued, failed): nothing to check
        start, end = bounds[0] - 1, bounds[1]
    through = min(end, start + limit)
    deadline = time.monotonic() + VERIFY_BUDGET_SECONDS

    def answer(found: ledger.Break | None, checked: int, last: int, last_hash: str) -> Verification:
        more = found is None and last < end
        return Verification(
            intact=found is None,
            checked=checked,
            first_seq=start + 1 if checked else None,
            last_seq=last if last > start else None,
            last_hash=last_hash,
            first_break=found,
            ledger_last_seq=head,
            next_cursor=(
                VERIFY_CURSOR.encode(
                    cursor_key, VerifyPosition(after_seq=last, head_hash=last_hash)
                )
                if more
                else None
            ),
        )

    prev_hash = ledger.GENESIS
    if start > 0:
        before = await repository.ledger_link(conn, start)
        if before is None:  # the row the range chains from is gone
            return answer(ledger.Break(start, NO_ROW, "gap", str(start), "none"), 0, start, "")
        if expected is not None and before[1] != expected:  # changed since the last range
            return answer(ledger.Break(start, before[0], "hash", expected, before[1]), 0, start, "")
        prev_hash = before[1]
    if through <= start:
        return answer(None, 0, start, prev_hash)

    prev_seq: int | None = start
    found: ledger.Break | None = None
    checked = 0
    window_end = min(through, start + VERIFY_WINDOW)
    rows = await repository.ledger_range(conn, after_seq=start, through_seq=window_end)
    while True:
        # Hash this window in the worker thread while the next one is read.
        next_end = min(through, window_end + VERIFY_WINDOW)
        verifying = asyncio.to_thread(
            ledger.verify_stored, rows, prev_hash=prev_hash, prev_seq=prev_seq
        )
        following: list[ledger.Stored] = []
        if next_end > window_end:
            (found, prev_hash, prev_seq, count), following = await asyncio.gather(
                verifying,
                repository.ledger_range(conn, after_seq=window_end, through_seq=next_end),
            )
        else:
            found, prev_hash, prev_seq, count = await verifying
        checked += count
        if found is not None or next_end <= window_end or time.monotonic() > deadline:
            break
        rows, window_end = following, next_end
    last = prev_seq if prev_seq is not None else start
    if found is None and checked == 0:  # every row of the range is missing
        found = ledger.Break(start + 1, NO_ROW, "gap", str(start + 1), "none")
    return answer(found, checked, last, prev_hash)


@dataclass(frozen=True)
class Replay:
    original: Recommendation
    replayed: Recommendation | None
    inputs_hash_matches: bool
    differences: list[str]

    @property
    def identical(self) -> bool:
        return self.inputs_hash_matches and self.replayed is not None and not self.differences


async def replay(conn: asyncpg.Connection, rec_id: UUID) -> Replay:
    """Make the call again from the inputs recorded for its run, and compare."""
    original = await get_recommendation(conn, rec_id)
    run = await get_run(conn, original.run_id)
    rows = await repository.run_recommendations(conn, original.run_id)
    matches = publication.recorded_inputs_hash(original) == original.inputs_hash
    calibration = Calibration.from_json(run.calibration)
    again = await asyncio.to_thread(publication.replay, rows, calibration)
    replayed = next((r for r in again if r.id == original.id), None)
    differences = (
        publication.differences(original, replayed) if replayed is not None else ["missing"]
    )
    return Replay(original, replayed, matches, differences)


# --- other contexts' view (recommendations.rpc.latest) -----------------------------------


def _latest_call(row: asyncpg.Record) -> events.LatestCall:
    target = row["target_price"]
    return events.LatestCall(
        id=row["id"],
        ticker=row["ticker"],
        action=row["action"],
        confidence=float(row["confidence"]),
        score=row["score"],
        target_price=float(target) if target is not None else None,
        price_at_call=float(row["price_at_call"]),
        horizon_days=row["horizon_days"],
        sector=row["sector"],
        thesis=row["thesis"],
        risk_factors=list(row["risk_factors"]),
        factors=[events.LatestFactor(**f) for f in row["factors"]],
        methodology_disclosure=row["methodology_disclosure"],
        data_sources=list(row["data_sources"]),
        hypothetical=row["hypothetical"],
    )


async def latest_calls(
    conn: asyncpg.Connection, request: events.LatestRequest
) -> events.LatestReply:
    """A page of the latest live run's calls, by ticker. The cursor (``<run id>/<ticker>``,
    internal to this subject) keeps a walk on the run it started with."""
    if request.cursor:
        run_text, _, after = request.cursor.partition("/")
        try:
            run_id = UUID(run_text)
        except ValueError:
            raise InvalidCursorError() from None
        run = await repository.get_run(conn, run_id)
        if run is None or not after:
            raise InvalidCursorError()
    else:
        after = None
        run = await repository.latest_completed_run(conn, hypothetical=False)
    if run is None or run.trading_day is None:
        return events.LatestReply(
            run_id=None,
            as_of=None,
            model_version=None,
            generated_at=None,
            calls=[],
            missing=list(dict.fromkeys(request.tickers or ())),
            next_cursor=None,
        )
    rows = await repository.run_calls(
        conn, run.id, tickers=request.tickers, after=after, limit=request.limit + 1
    )
    calls = [_latest_call(row) for row in rows[: request.limit]]
    more = len(rows) > request.limit
    last = calls[-1].ticker if calls else None
    found = {call.ticker for call in calls}
    # A ticker is missing once this page's range has passed it without a call.
    missing = [
        t
        for t in sorted(set(request.tickers or ()))
        if t not in found and (after is None or t > after) and (not more or (last and t < last))
    ]
    return events.LatestReply(
        run_id=run.id,
        as_of=run.trading_day,
        model_version=run.model_version,
        generated_at=rows[0]["generated_at"] if rows else run.completed_at,
        calls=calls,
        missing=missing,
        next_cursor=f"{run.id}/{last}" if more else None,
    )

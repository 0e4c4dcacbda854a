"""Every SQL statement of the recommendations service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from services.recommendations.domain.calls import Action, Recommendation, RunRecord
from services.recommendations.domain.ledger import GENESIS, Link
from services.recommendations.domain.track_record import Judged, Matured, Outcome, Pending

# Serialises appends to the ledger: each run's rows are chained after the last one.
_LEDGER_LOCK = 0x7265636C6564  # "recled"

_COLUMNS = (
    "seq, id, run_id, ticker, sector, action, confidence, score, target_price, price_at_call,"
    " thesis, risk_factors, methodology_disclosure, data_sources, generated_at, model_version,"
    " horizon_days, as_of, hypothetical, factors, inputs, inputs_hash, content_hash, prev_hash,"
    " hash"
)


def _recommendation(row: asyncpg.Record) -> Recommendation:
    return Recommendation(
        seq=row["seq"],
        id=row["id"],
        run_id=row["run_id"],
        ticker=row["ticker"],
        sector=row["sector"],
        action=Action(row["action"]),
        confidence=row["confidence"],
        score=row["score"],
        target_price=row["target_price"],
        price_at_call=row["price_at_call"],
        thesis=row["thesis"],
        risk_factors=tuple(row["risk_factors"]),
        methodology_disclosure=row["methodology_disclosure"],
        data_sources=tuple(row["data_sources"]),
        generated_at=row["generated_at"],
        model_version=row["model_version"],
        horizon_days=row["horizon_days"],
        as_of=row["as_of"],
        hypothetical=row["hypothetical"],
        factors=tuple(row["factors"]),
        inputs=row["inputs"],
        inputs_hash=row["inputs_hash"],
        content_hash=row["content_hash"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


_RUN_COLUMNS = (
    "id, kind, trading_day, hypothetical, status, model_version, requested_by, trigger_event,"
    " universe, called, changed, calibration, timings, error, started_at, completed_at"
)


def _run(row: asyncpg.Record) -> RunRecord:
    return RunRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118 (a Record is not a dict)


# --- runs -----------------------------------------------------------------------------


def _where_given(
    conditions: list[str], args: list[Any], *clauses: tuple[str, object | None]
) -> None:
    """Add each filter ``clause`` (``"column = ${}"``) whose value is given, numbering its
    parameter after those already in ``args``."""
    for clause, value in clauses:
        if value is not None:
            args.append(value)
            conditions.append(clause.format(len(args)))


async def claim_run(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    kind: str,
    trading_day: date,
    hypothetical: bool,
    model_version: str,
    requested_by: str | None,
    trigger_event: UUID | None,
) -> bool:
    """Insert a running run; False when a run of that trading day already exists (or is
    being inserted by another transaction, which this one waits for)."""
    inserted = await conn.fetchval(
        "INSERT INTO runs (id, kind, trading_day, hypothetical, status, model_version,"
        " requested_by, trigger_event) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)"
        " ON CONFLICT (trading_day, hypothetical) WHERE status <> 'failed' DO NOTHING"
        " RETURNING id",
        run_id,
        kind,
        trading_day,
        hypothetical,
        model_version,
        requested_by,
        trigger_event,
    )
    return inserted is not None


async def queue_run(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    trading_day: date | None,
    model_version: str,
    requested_by: str,
) -> RunRecord:
    row = await conn.fetchrow(
        "INSERT INTO runs (id, kind, trading_day, hypothetical, status, model_version,"
        " requested_by) VALUES ($1, 'on_demand', $2, false, 'queued', $3, $4)"
        f" RETURNING {_RUN_COLUMNS}",
        run_id,
        trading_day,
        model_version,
        requested_by,
    )
    return _run(row)


async def start_queued_run(conn: asyncpg.Connection, run_id: UUID, *, trading_day: date) -> bool:
    """Move a queued run to running on ``trading_day``; False if it is not queued."""
    started = await conn.fetchval(
        "UPDATE runs SET status = 'running', trading_day = $2, started_at = now()"
        " WHERE id = $1 AND status = 'queued' RETURNING id",
        run_id,
        trading_day,
    )
    return started is not None


async def fail_run(conn: asyncpg.Connection, run_id: UUID, *, error: str) -> None:
    await conn.execute(
        "UPDATE runs SET status = 'failed', error = $2, completed_at = clock_timestamp()"
        " WHERE id = $1 AND status IN ('queued', 'running')",
        run_id,
        error,
    )


async def complete_run(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    universe: int,
    called: int,
    changed: int,
    calibration: dict[str, Any],
    timings: dict[str, float],
) -> None:
    await conn.execute(
        "UPDATE runs SET status = 'completed', universe = $2, called = $3, changed = $4,"
        " calibration = $5, timings = $6, completed_at = clock_timestamp() WHERE id = $1",
        run_id,
        universe,
        called,
        changed,
        calibration,
        timings,
    )


async def set_timings(conn: asyncpg.Connection, run_id: UUID, timings: dict[str, float]) -> None:
    await conn.execute("UPDATE runs SET timings = $2 WHERE id = $1", run_id, timings)


async def record_failed_run(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    kind: str,
    trading_day: date,
    hypothetical: bool,
    model_version: str,
    requested_by: str | None,
    error: str,
    timings: dict[str, float],
) -> None:
    await conn.execute(
        "INSERT INTO runs (id, kind, trading_day, hypothetical, status, model_version,"
        " requested_by, error, timings, completed_at)"
        " VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7, $8, now())"
        " ON CONFLICT (id) DO UPDATE SET status = 'failed', error = EXCLUDED.error,"
        " timings = EXCLUDED.timings, completed_at = clock_timestamp()",
        run_id,
        kind,
        trading_day,
        hypothetical,
        model_version,
        requested_by,
        error,
        timings,
    )


async def run_for_day(
    conn: asyncpg.Connection, trading_day: date, *, hypothetical: bool
) -> RunRecord | None:
    """The run (other than a failed one) of ``trading_day``, if any."""
    row = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE trading_day = $1 AND hypothetical = $2"
        " AND status <> 'failed'",
        trading_day,
        hypothetical,
    )
    return _run(row) if row else None


async def get_run(conn: asyncpg.Connection, run_id: UUID) -> RunRecord | None:
    row = await conn.fetchrow(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = $1", run_id)
    return _run(row) if row else None


async def latest_completed_run(conn: asyncpg.Connection, *, hypothetical: bool) -> RunRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = 'completed' AND hypothetical = $1"
        " ORDER BY trading_day DESC LIMIT 1",
        hypothetical,
    )
    return _run(row) if row else None


async def list_runs(
    conn: asyncpg.Connection, *, limit: int, after: tuple[datetime, UUID] | None
) -> list[RunRecord]:
    """Newest first, after the keyset position ``(started_at, id)``."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC LIMIT $1", limit
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE (started_at, id) < ($1, $2)"
            " ORDER BY started_at DESC, id DESC LIMIT $3",
            *after,
            limit,
        )
    return [_run(row) for row in rows]


# --- the ledger -----------------------------------------------------------------------


async def lock_ledger_tail(conn: asyncpg.Connection) -> tuple[int, str]:
    """Take the ledger's append lock (until the transaction ends) and return the last
    row's ``(seq, hash)``, ``(0, GENESIS)`` when it is empty."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LEDGER_LOCK)
    row = await conn.fetchrow("SELECT seq, hash FROM recommendations ORDER BY seq DESC LIMIT 1")
    return (row["seq"], row["hash"]) if row else (0, GENESIS)


async def append(conn: asyncpg.Connection, rows: Sequence[Recommendation]) -> None:
    """Insert chained rows in one statement (arrays unnested server-side)."""
    if not rows:
        return

    def col(name: str) -> list[Any]:
        return [getattr(r, name) for r in rows]

    await conn.execute(
        "INSERT INTO recommendations (" + _COLUMNS + ")"
        " SELECT seq, id, run_id, ticker, sector, action, confidence, score, target_price,"
        " price_at_call, thesis,"
        " ARRAY(SELECT jsonb_array_elements_text(risk_factors::jsonb)),"
        " methodology_disclosure,"
        " ARRAY(SELECT jsonb_array_elements_text(data_sources::jsonb)),"
        " generated_at, model_version, horizon_days, as_of, hypothetical, factors::jsonb,"
        " inputs::jsonb, inputs_hash, content_hash, prev_hash, hash"
        " FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],"
        " $7::numeric[], $8::float8[], $9::numeric[], $10::numeric[], $11::text[], $12::text[],"
        " $13::text[], $14::text[], $15::timestamptz[], $16::text[], $17::int[], $18::date[],"
        " $19::bool[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],"
        " $25::text[]) AS t(seq, id, run_id, ticker, sector, action, confidence, score,"
        " target_price, price_at_call, thesis, risk_factors, methodology_disclosure,"
        " data_sources, generated_at, model_version, horizon_days, as_of, hypothetical,"
        " factors, inputs, inputs_hash, content_hash, prev_hash, hash)",
        col("seq"),
        col("id"),
        col("run_id"),
        col("ticker"),
        col("sector"),
        [r.action.value for r in rows],
        col("confidence"),
        col("score"),
        col("target_price"),
        col("price_at_call"),
        col("thesis"),
        [orjson.dumps(list(r.risk_factors)).decode() for r in rows],
        col("methodology_disclosure"),
        [orjson.dumps(list(r.data_sources)).decode() for r in rows],
        col("generated_at"),
        col("model_version"),
        col("horizon_days"),
        col("as_of"),
        col("hypothetical"),
        [orjson.dumps([dict(f) for f in r.factors]).decode() for r in rows],
        [orjson.dumps(dict(r.inputs)).decode() for r in rows],
        col("inputs_hash"),
        col("content_hash"),
        col("prev_hash"),
        col("hash"),
    )


async def run_recommendations(conn: asyncpg.Connection, run_id: UUID) -> list[Recommendation]:
    """A run's rows in ledger order."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM recommendations WHERE run_id = $1 ORDER BY seq", run_id
    )
    return [_recommendation(row) for row in rows]


async def get_recommendation(conn: asyncpg.Connection, rec_id: UUID) -> Recommendation | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM recommendations WHERE id = $1", rec_id)
    return _recommendation(row) if row else None


async def ledger_batch(
    conn: asyncpg.Connection, *, after_seq: int, limit: int
) -> list[tuple[Link, Recommendation]]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM recommendations WHERE seq > $1 ORDER BY seq LIMIT $2",
        after_seq,
        limit,
    )
    out = []
    for row in rows:
        rec = _recommendation(row)
        out.append((Link(rec.seq, rec.id, rec.content_hash, rec.prev_hash, rec.hash), rec))
    return out


async def ledger_size(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM recommendations"))


async def previous_live_actions(
    conn: asyncpg.Connection, tickers: list[str], *, before: date
) -> dict[str, Action]:
    """Each ticker's most recent live (not hypothetical) action on a day before ``before``."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (ticker) ticker, action FROM recommendations"
        " WHERE ticker = ANY($1::text[]) AND NOT hypothetical AND as_of < $2"
        " ORDER BY ticker, as_of DESC, seq DESC",
        tickers,
        before,
    )
    return {row["ticker"]: Action(row["action"]) for row in rows}


async def list_run_recommendations(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    limit: int,
    after: tuple[float, str] | None,
    action: Action | None,
    ticker: str | None,
    sector: str | None,
    min_confidence: Decimal | None,
    sort: str,
) -> list[Recommendation]:
    """One run's calls, ordered by ``sort`` (``score`` or ``confidence``, descending, then
    ticker), after the keyset position ``(sort value, ticker)``."""
    column = {"score": "score", "confidence": "confidence::float8"}[sort]
    conditions = ["run_id = $1"]
    args: list[Any] = [run_id]
    if after is not None:
        args.extend(after)
        conditions.append(f"({column}, ticker) < (${len(args) - 1}, ${len(args)})")
    _where_given(
        conditions,
        args,
        ("action = ${}", action.value if action else None),
        ("ticker = ${}", ticker),
        ("sector = ${}", sector),
        ("confidence >= ${}", min_confidence),
    )
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM recommendations WHERE {' AND '.join(conditions)}"
        f" ORDER BY {column} DESC, ticker DESC LIMIT ${len(args)}",
        *args,
    )
    return [_recommendation(row) for row in rows]


# --- history --------------------------------------------------------------------------


async def history(
    conn: asyncpg.Connection,
    *,
    limit: int,
    after: tuple[date, int] | None,
    ticker: str | None,
    action: Action | None,
    since: date | None,
    until: date | None,
    run_id: UUID | None,
    model_version: str | None,
    hypothetical: bool | None,
) -> list[Recommendation]:
    """Published calls, newest as-of first (ledger order within a day), after the keyset
    position ``(as_of, seq)``."""
    conditions = ["TRUE"]
    args: list[Any] = []
    if after is not None:
        args.extend(after)
        conditions.append(f"(as_of, seq) < (${len(args) - 1}, ${len(args)})")
    _where_given(
        conditions,
        args,
        ("ticker = ${}", ticker),
        ("action = ${}", action.value if action else None),
        ("as_of >= ${}", since),
        ("as_of <= ${}", until),
        ("run_id = ${}", run_id),
        ("model_version = ${}", model_version),
        ("hypothetical = ${}", hypothetical),
    )
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM recommendations WHERE {' AND '.join(conditions)}"
        f" ORDER BY as_of DESC, seq DESC LIMIT ${len(args)}",
        *args,
    )
    return [_recommendation(row) for row in rows]


# --- outcomes and the track record ----------------------------------------------------


async def pending_outcomes(conn: asyncpg.Connection, *, since: date, until: date) -> list[Pending]:
    """Calls as of ``since``..``until`` without an outcome."""
    rows = await conn.fetch(
        "SELECT r.id, r.ticker, r.as_of, r.action, r.horizon_days,"
        " (SELECT (f ->> 'value')::float8 FROM jsonb_array_elements(r.factors) f"
        "  WHERE f ->> 'key' = 'volatility_63d') AS volatility"
        " FROM recommendations r LEFT JOIN outcomes o ON o.recommendation_id = r.id"
        " WHERE o.recommendation_id IS NULL AND r.as_of BETWEEN $1 AND $2",
        since,
        until,
    )
    return [
        Pending(
            recommendation_id=r["id"],
            ticker=r["ticker"],
            as_of=r["as_of"],
            action=Action(r["action"]),
            horizon_days=r["horizon_days"],
            volatility=r["volatility"],
        )
        for r in rows
    ]


async def insert_outcomes(conn: asyncpg.Connection, rows: Sequence[Outcome]) -> None:
    if not rows:
        return
    await conn.execute(
        "INSERT INTO outcomes (recommendation_id, matured_on, realised_return,"
        " benchmark_return, excess_return, hit, benchmark)"
        " SELECT * FROM unnest($1::uuid[], $2::date[], $3::float8[], $4::float8[],"
        " $5::float8[], $6::bool[], $7::text[]) ON CONFLICT (recommendation_id) DO NOTHING",
        [r.recommendation_id for r in rows],
        [r.matured_on for r in rows],
        [r.realised_return for r in rows],
        [r.benchmark_return for r in rows],
        [r.excess_return for r in rows],
        [r.hit for r in rows],
        [r.benchmark for r in rows],
    )


async def matured_calls(
    conn: asyncpg.Connection, *, matured_by: date | None = None
) -> list[Matured]:
    """Every judged call (matured by a date)."""
    rows = await conn.fetch(
        "SELECT r.action, r.score, o.hit, r.model_version, o.matured_on FROM outcomes o"
        " JOIN recommendations r ON r.id = o.recommendation_id"
        " WHERE $1::date IS NULL OR o.matured_on <= $1",
        matured_by,
    )
    return [
        Matured(Action(r["action"]), r["score"], r["hit"], r["model_version"], r["matured_on"])
        for r in rows
    ]


async def judged(
    conn: asyncpg.Connection, *, hypothetical: bool, model_version: str | None
) -> list[Judged]:
    rows = await conn.fetch(
        "SELECT r.as_of, r.action, r.confidence::float8 AS confidence, r.score, r.sector,"
        " r.model_version, o.realised_return, o.excess_return, o.hit, o.benchmark"
        " FROM outcomes o JOIN recommendations r ON r.id = o.recommendation_id"
        " WHERE r.hypothetical = $1 AND ($2::text IS NULL OR r.model_version = $2)"
        " ORDER BY r.as_of, r.seq",
        hypothetical,
        model_version,
    )
    return [
        Judged(
            as_of=r["as_of"],
            action=Action(r["action"]),
            confidence=r["confidence"],
            score=r["score"],
            sector=r["sector"],
            model_version=r["model_version"],
            realised_return=r["realised_return"],
            excess_return=r["excess_return"],
            hit=r["hit"],
            benchmark=r["benchmark"],
        )
        for r in rows
    ]


async def hypothetical_days(conn: asyncpg.Connection) -> set[date]:
    rows = await conn.fetch(
        "SELECT trading_day FROM runs WHERE hypothetical AND status <> 'failed'"
    )
    return {r["trading_day"] for r in rows}


# --- the latest run, for other contexts (recommendations.rpc.latest) ---------------------

_CALL_COLUMNS = (
    "id, ticker, action, confidence, score, target_price, price_at_call, horizon_days, sector,"
    " thesis, risk_factors, factors, methodology_disclosure, data_sources, hypothetical,"
    " generated_at"
)


async def run_calls(
    conn: asyncpg.Connection,
    run_id: UUID,
    *,
    tickers: Sequence[str] | None,
    after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """One run's calls by ticker (those of ``tickers`` if given), after the ticker ``after``;
    the columns other contexts read, without the recorded inputs."""
    conditions = ["run_id = $1"]
    args: list[Any] = [run_id]
    _where_given(conditions, args, ("ticker = ANY(${})", tickers), ("ticker > ${}", after))
    args.append(limit)
    return list(
        await conn.fetch(
            f"SELECT {_CALL_COLUMNS} FROM recommendations WHERE {' AND '.join(conditions)}"
            f" ORDER BY ticker LIMIT ${len(args)}",
            *args,
        )
    )

"""API models of the recommendations service.

:class:`RecommendationResponse` starts with the API contract's fields, named and typed as
the contract fixes them, then adds ours (the call's reasons, inputs and ledger place).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.recommendations.domain.calls import Recommendation, RunRecord
from services.recommendations.domain.ledger import Break
from shared.pagination import CursorCodec, CursorPosition


class FactorOut(BaseModel):
    key: str
    value: float | None = Field(description="raw value; null when history is too short")
    z_score: float = Field(description="cross-sectional z-score, clipped at +/-3; 0 if missing")
    contribution: float = Field(description="weighted z-score on the score's scale")
    percentile: float | None = Field(description="rank of the value in the universe, (0, 1]")


class RecommendationResponse(BaseModel):
    # The API contract
    ticker: str
    action: Literal["BUY", "HOLD", "SELL"]
    confidence: float = Field(ge=0, le=1)
    target_price: float | None
    thesis: str
    risk_factors: list[str]
    generated_at: datetime
    methodology_disclosure: str
    data_sources: list[str]
    # Ours
    id: UUID
    run_id: UUID
    model_version: str
    horizon_days: int = Field(description="trading sessions the call is about")
    as_of: date = Field(description="the last session whose data the call used")
    price_at_call: float
    score: float
    sector: str | None
    factors: list[FactorOut]
    inputs_hash: str = Field(description="sha256 of the inputs recorded for the call")
    hypothetical: bool = Field(description="true for a backtested call, never published live")
    ledger_seq: int
    ledger_hash: str = Field(description="sha256(previous row's hash + this row's content hash)")

    @classmethod
    def of(cls, rec: Recommendation) -> RecommendationResponse:
        return cls(
            ticker=rec.ticker,
            action=rec.action.value,
            confidence=float(rec.confidence),
            target_price=float(rec.target_price) if rec.target_price is not None else None,
            thesis=rec.thesis,
            risk_factors=list(rec.risk_factors),
            generated_at=rec.generated_at,
            methodology_disclosure=rec.methodology_disclosure,
            data_sources=list(rec.data_sources),
            id=rec.id,
            run_id=rec.run_id,
            model_version=rec.model_version,
            horizon_days=rec.horizon_days,
            as_of=rec.as_of,
            price_at_call=float(rec.price_at_call),
            score=rec.score,
            sector=rec.sector,
            factors=[FactorOut(**f) for f in rec.factors],
            inputs_hash=rec.inputs_hash,
            hypothetical=rec.hypothetical,
            ledger_seq=rec.seq,
            ledger_hash=rec.hash,
        )


class RecommendationPage(BaseModel):
    run_id: UUID | None = Field(description="the run listed; null before the first run")
    as_of: date | None
    items: list[RecommendationResponse]
    next_cursor: str | None


class RunResponse(BaseModel):
    id: UUID
    kind: Literal["scheduled", "on_demand", "backfill"]
    trading_day: date | None = Field(description="null while an on-demand run is queued")
    hypothetical: bool
    status: Literal["queued", "running", "completed", "failed"]
    model_version: str
    requested_by: str | None
    universe: int | None
    called: int | None
    changed: int | None
    timings: dict[str, float]
    error: str | None
    started_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, run: RunRecord) -> RunResponse:
        fields: dict[str, Any] = {k: getattr(run, k) for k in cls.model_fields}
        fields["timings"] = dict(run.timings)
        return cls(**fields)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(
        None, description="the session to call as of; default: the latest with data"
    )


class RunPage(BaseModel):
    items: list[RunResponse]
    next_cursor: str | None


class LedgerBreak(BaseModel):
    seq: int
    id: UUID
    reason: Literal["content", "previous", "hash", "gap"]
    expected: str
    found: str

    @classmethod
    def of(cls, found: Break) -> LedgerBreak:
        return cls.model_validate(found, from_attributes=True)


class LedgerVerification(BaseModel):
    """One range of the ledger recomputed; follow ``next_cursor`` to walk all of it."""

    intact: bool = Field(description="no break in the range checked")
    checked: int = Field(description="rows recomputed, up to and including the first break")
    first_seq: int | None = Field(description="the first row of the range checked")
    last_seq: int | None = Field(description="the last row found intact")
    last_hash: str = Field(description="the chain's head after the rows found intact")
    first_break: LedgerBreak | None
    ledger_last_seq: int = Field(description="the ledger's last row when the check started")
    next_cursor: str | None = Field(
        description="continues the walk after this range (null at the ledger's end or a break)"
    )


class ReplayResponse(BaseModel):
    identical: bool
    inputs_hash_matches: bool
    differences: list[str] = Field(description="published fields on which the replay differs")
    original: RecommendationResponse
    replayed: RecommendationResponse | None


class HistoryPage(BaseModel):
    items: list[RecommendationResponse]
    next_cursor: str | None


class TrackRecordResponse(BaseModel):
    """Live and hypothetical calls are never pooled (SEC marketing rule)."""

    live: dict[str, Any] = Field(description="calls published at the time")
    hypothetical: dict[str, Any] = Field(
        description="walk-forward backtest calls: hypothetical performance, with its limits"
    )
    benchmark: str = Field(
        description="what new outcomes are measured against; each part's by_benchmark says"
        " what its judged calls were measured against"
    )
    hit_rules: dict[str, str]
    methodology: str


# --- cursors (one signed codec per list) -------------------------------------------------


class LatestPosition(CursorPosition):
    """Where a page of the latest run ends: the run, the sort, the last value and ticker."""

    run: UUID
    sort: Literal["score", "confidence"]
    value: float
    ticker: str


class HistoryPosition(CursorPosition):
    """Where a page of history ends: the last call's as-of date and ledger position."""

    as_of: date
    seq: int


class RunPosition(CursorPosition):
    """Where a page of runs ends (newest first): the last run's start and id."""

    started_at: AwareDatetime
    id: UUID


class VerifyPosition(CursorPosition):
    """Where a range of ledger verification ended: its last row and the head computed."""

    after_seq: int
    head_hash: str


LATEST_CURSOR = CursorCodec("recommendations.latest", LatestPosition)
HISTORY_CURSOR = CursorCodec("recommendations.history", HistoryPosition)
RUNS_CURSOR = CursorCodec("recommendations.runs", RunPosition)
VERIFY_CURSOR = CursorCodec("recommendations.ledger.verify", VerifyPosition)

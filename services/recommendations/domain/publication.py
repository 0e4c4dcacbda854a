"""Between the model and the ledger: a run's calls as ledger rows, and back for replay.

Prices are rounded to the ledger's precision (4 decimals) *before* the calls are made, so
the frame rebuilt from the ledger is the frame the calls came from, bit for bit, and a
replay gives the same calls. Rows keep the frame's order (``seq``): float sums depend on
order, and so would a z-score recomputed in another one.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from services.recommendations.domain import ledger
from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import Calibration
from services.recommendations.domain.calls import Recommendation
from services.recommendations.domain.factors import FactorFrame, Panel, compute_factors
from services.recommendations.domain.model import (
    Call,
    RecentActions,
    call_universe,
    recent_actions_of,
)

PRICE_PLACES = Decimal("0.0001")
CONFIDENCE_PLACES = Decimal("0.001")


def ledger_ready(frame: FactorFrame) -> FactorFrame:
    """``frame`` with prices at the ledger's precision."""
    return dataclasses.replace(frame, prices=np.round(frame.prices, 4))


def calls_for_ledger(
    panel: Panel,
    as_of: date,
    spec: s.ModelSpec,
    calibration: Calibration,
    *,
    hypothetical: bool = False,
) -> list[Call]:
    """The model's calls at ``as_of``, made from a ledger-ready frame (so they replay)."""
    frame = ledger_ready(compute_factors(panel, as_of, spec))
    return call_universe(
        frame,
        spec,
        calibration,
        sources={t: panel.sources_of(t) for t in frame.tickers},
        recent_actions=recent_actions_of(panel, frame.as_of, spec),
        hypothetical=hypothetical,
    )


def _number(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def inputs_of(call: Call) -> dict[str, Any]:
    """What the call read besides its factor values and price (recorded for replay)."""
    return {
        "dollar_volume": _number(call.dollar_volume),
        "history_days": call.history_days,
        "recent_actions": [[d.isoformat(), kind] for d, kind in call.recent_actions],
    }


def inputs_hash(
    *,
    model_version: str,
    as_of: date,
    ticker: str,
    sector: str | None,
    price_at_call: Decimal,
    values: Sequence[float | None],
    data_sources: Sequence[str],
    inputs: Mapping[str, Any],
) -> str:
    return ledger.digest(
        ledger.canonical_json(
            {
                "model_version": model_version,
                "as_of": as_of.isoformat(),
                "ticker": ticker,
                "sector": sector,
                "price_at_call": str(price_at_call),
                "values": list(values),
                "data_sources": list(data_sources),
                "inputs": dict(inputs),
            }
        )
    )


def recommendation_id(run_id: uuid.UUID, ticker: str) -> uuid.UUID:
    return uuid.uuid5(run_id, ticker)


def to_recommendations(
    calls: Sequence[Call], *, run_id: uuid.UUID, generated_at: datetime, hypothetical: bool
) -> list[Recommendation]:
    rows = []
    for call in calls:
        price = Decimal(f"{call.price_at_call:.4f}")
        inputs = inputs_of(call)
        factors = tuple(
            {
                "key": f.key,
                "value": f.value,
                "z_score": f.z,
                "contribution": f.contribution,
                "percentile": f.percentile,
            }
            for f in call.factors
        )
        rows.append(
            Recommendation(
                id=recommendation_id(run_id, call.ticker),
                run_id=run_id,
                ticker=call.ticker,
                sector=call.sector,
                action=call.action,
                confidence=Decimal(str(call.confidence)).quantize(CONFIDENCE_PLACES),
                score=float(call.score),
                target_price=(
                    Decimal(f"{call.target_price:.4f}")
                    if call.target_price is not None and call.target_price > 0
                    else None
                ),
                price_at_call=price,
                thesis=call.thesis,
                risk_factors=call.risk_factors,
                methodology_disclosure=call.methodology_disclosure,
                data_sources=call.data_sources,
                generated_at=generated_at,
                model_version=call.model_version,
                horizon_days=call.horizon_days,
                as_of=call.as_of,
                hypothetical=hypothetical,
                factors=factors,
                inputs=inputs,
                inputs_hash=inputs_hash(
                    model_version=call.model_version,
                    as_of=call.as_of,
                    ticker=call.ticker,
                    sector=call.sector,
                    price_at_call=price,
                    values=[f.value for f in call.factors],
                    data_sources=call.data_sources,
                    inputs=inputs,
                ),
            )
        )
    return rows


def chain(rows: Sequence[Recommendation], *, prev_hash: str, prev_seq: int) -> list[Recommendation]:
    """``rows`` numbered after ``prev_seq`` and hash-chained after ``prev_hash``."""
    out = []
    for offset, row in enumerate(rows, start=1):
        content = row.content()
        content["seq"] = seq = prev_seq + offset
        own = ledger.content_hash(content)
        link = ledger.chain_hash(prev_hash, own)
        out.append(
            dataclasses.replace(row, seq=seq, content_hash=own, prev_hash=prev_hash, hash=link)
        )
        prev_hash = link
    return out


def recorded_inputs_hash(row: Recommendation) -> str:
    """The inputs hash recomputed from what the ledger recorded for ``row``."""
    return inputs_hash(
        model_version=row.model_version,
        as_of=row.as_of,
        ticker=row.ticker,
        sector=row.sector,
        price_at_call=row.price_at_call,
        values=[f["value"] for f in row.factors],
        data_sources=row.data_sources,
        inputs=row.inputs,
    )


def replay(rows: Sequence[Recommendation], calibration: Calibration) -> list[Recommendation]:
    """A run's calls made again from the inputs the ledger recorded for them (``rows``, in
    ledger order), as rows comparable field by field with the originals (no chain)."""
    if not rows:
        return []
    first = rows[0]
    spec = s.SPECS[first.model_version]
    by_key = [{f["key"]: f["value"] for f in row.factors} for row in rows]
    frame = FactorFrame(
        as_of=first.as_of,
        keys=spec.keys,
        tickers=tuple(r.ticker for r in rows),
        sectors=tuple(r.sector for r in rows),
        values=np.array(
            [[np.nan if v.get(k) is None else v[k] for k in spec.keys] for v in by_key],
            dtype=np.float64,
        ),
        prices=np.array([float(r.price_at_call) for r in rows]),
        dollar_volume=np.array(
            [r.inputs["dollar_volume"] for r in rows], dtype=np.float64
        ),  # None becomes NaN
        history_days=np.array([r.inputs["history_days"] for r in rows], dtype=np.int64),
    )
    recent: dict[str, RecentActions] = {
        r.ticker: tuple((date.fromisoformat(d), kind) for d, kind in r.inputs["recent_actions"])
        for r in rows
        if r.inputs["recent_actions"]
    }
    calls = call_universe(
        frame,
        spec,
        calibration,
        sources={r.ticker: tuple(r.data_sources) for r in rows},
        recent_actions=recent,
        hypothetical=first.hypothetical,
    )
    return to_recommendations(
        calls, run_id=first.run_id, generated_at=first.generated_at, hypothetical=first.hypothetical
    )


def differences(original: Recommendation, replayed: Recommendation) -> list[str]:
    """The published fields on which a replay differs (empty: identical)."""
    a, b = original.content(), replayed.content()
    return [k for k in ledger.CONTENT_FIELDS if k != "seq" and a[k] != b[k]]

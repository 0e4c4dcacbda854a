"""Pure recommendation logic: what counts as a change, and how events are split."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.recommendations.domain import Action, Recommendation, action_changes, chunks


def rec(ticker: str, action: Action) -> Recommendation:
    return Recommendation(
        id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        ticker=ticker,
        sector=None,
        action=action,
        confidence=Decimal("0.7"),
        score=0.0,
        target_price=None,
        price_at_call=Decimal("10"),
        thesis="t",
        risk_factors=(),
        methodology_disclosure="m",
        data_sources=("market:simulated",),
        generated_at=datetime.now(UTC),
        model_version="mf-1.0",
        horizon_days=21,
        as_of=date(2026, 1, 2),
        hypothetical=False,
        factors=(),
        inputs={},
        inputs_hash="h",
    )


def test_changes_are_new_tickers_and_different_actions_only() -> None:
    new = [rec("AAA", Action.BUY), rec("BBB", Action.HOLD), rec("CCC", Action.SELL)]
    previous = {"AAA": Action.BUY, "BBB": Action.SELL}
    changed = action_changes(new, previous)
    assert [(r.ticker, before) for r, before in changed] == [
        ("BBB", Action.SELL),
        ("CCC", None),
    ]


@pytest.mark.parametrize(
    ("count", "size", "lengths"),
    [(0, 3, [0]), (1, 3, [1]), (3, 3, [3]), (7, 3, [3, 3, 1]), (2500, 1000, [1000, 1000, 500])],
)
def test_chunks_cover_everything_in_order(count: int, size: int, lengths: list[int]) -> None:
    items = list(range(count))
    parts = chunks(items, size)
    assert [len(p) for p in parts] == lengths
    assert [x for p in parts for x in p] == items


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chunks([1], 0)

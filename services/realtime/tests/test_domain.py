"""Alert rules without I/O: when a rule is met, and when it fires or re-arms."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.realtime.domain import (
    AlertRule,
    Condition,
    Decision,
    Observation,
    decide,
    is_met,
    recommendation_changes,
    simple_moving_average,
)

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def rule(condition: Condition, threshold: str | None = "100", **changes: object) -> AlertRule:
    base = AlertRule(
        id=uuid.uuid4(),
        owner_id="u1",
        ticker="ACME",
        condition=condition,
        threshold=Decimal(threshold) if threshold is not None else None,
        window_days=None,
        cooldown_seconds=0,
        active=True,
        armed=True,
        last_fired_at=None,
        created_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def obs(price: float, change_percent: float = 0.0, average: float | None = None) -> Observation:
    return Observation(price, change_percent, 0, average)


@pytest.mark.parametrize(
    ("condition", "threshold", "observation", "met"),
    [
        (Condition.PRICE_ABOVE, "100", obs(100.01), True),
        (Condition.PRICE_ABOVE, "100", obs(100.0), False),
        (Condition.PRICE_BELOW, "100", obs(99.99), True),
        (Condition.PRICE_BELOW, "100", obs(100.0), False),
        (Condition.PERCENT_MOVE_UP, "5", obs(1, 5.0), True),
        (Condition.PERCENT_MOVE_UP, "5", obs(1, 4.99), False),
        (Condition.PERCENT_MOVE_DOWN, "5", obs(1, -5.0), True),
        (Condition.PERCENT_MOVE_DOWN, "5", obs(1, 5.0), False),
        (Condition.MA_CROSS_ABOVE, None, obs(101, average=100), True),
        (Condition.MA_CROSS_ABOVE, None, obs(99, average=100), False),
        (Condition.MA_CROSS_BELOW, None, obs(99, average=100), True),
        (Condition.MA_CROSS_BELOW, None, obs(101, average=None), None),
    ],
)
def test_conditions(
    condition: Condition, threshold: str | None, observation: Observation, met: bool | None
) -> None:
    assert is_met(rule(condition, threshold, window_days=20), observation) is met


def test_fires_once_per_crossing() -> None:
    current = rule(Condition.PRICE_ABOVE)
    decisions = []
    for price in (99, 101, 102, 103, 99, 98, 104):
        decision = decide(current, is_met(current, obs(price)), NOW)
        decisions.append(decision)
        if decision is Decision.FIRE:
            current = current.fired(NOW)
        elif decision is Decision.REARM:
            current = current.rearmed()
    assert decisions == [
        Decision.NONE,
        Decision.FIRE,
        Decision.NONE,
        Decision.NONE,
        Decision.REARM,
        Decision.NONE,
        Decision.FIRE,
    ]


def test_cooldown_holds_a_rearmed_rule_back() -> None:
    cooling = rule(Condition.PRICE_ABOVE, cooldown_seconds=60, last_fired_at=NOW)
    assert decide(cooling, True, NOW + timedelta(seconds=59)) is Decision.NONE
    assert decide(cooling, True, NOW + timedelta(seconds=60)) is Decision.FIRE


def test_inactive_and_unknown_never_fire() -> None:
    assert decide(rule(Condition.PRICE_ABOVE, active=False), True, NOW) is Decision.NONE
    assert decide(rule(Condition.MA_CROSS_ABOVE, None), None, NOW) is Decision.NONE


def test_recommendation_changes_need_a_known_different_previous_action() -> None:
    changes = recommendation_changes(
        [("ACME", "SELL", "BUY"), ("ZETA", "HOLD", "HOLD"), ("NEWW", "BUY", None)], "r2"
    )
    assert [(c.ticker, c.previous_action, c.action) for c in changes] == [("ACME", "BUY", "SELL")]


def test_simple_moving_average() -> None:
    assert simple_moving_average([1, 2, 3, 4], 2) == 3.5
    assert simple_moving_average([1, 2], 3) is None

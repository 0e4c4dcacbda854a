"""Pure alert logic: rule kinds, when a rule is met, and when it fires. No I/O.

A rule is *armed* when created. On each observation (a tick, or a recommendation run):

- met and armed, cooldown elapsed  -> **fire**, and disarm;
- not met and disarmed             -> **re-arm** (the crossing is over);
- anything else                    -> nothing.

So a rule fires once per crossing, never on every tick while the condition holds, and at
most once per ``cooldown_seconds``. Several nodes evaluate the same ticks; the database
arbitrates each transition (see ``repository.fire``), so an alert is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from uuid import UUID


class Condition(StrEnum):
    PRICE_ABOVE = "price_above"
    PRICE_BELOW = "price_below"
    PERCENT_MOVE_UP = "percent_move_up"  # change in the day >= +threshold %
    PERCENT_MOVE_DOWN = "percent_move_down"  # change in the day <= -threshold %
    MA_CROSS_ABOVE = "ma_cross_above"  # price above its window_days simple moving average
    MA_CROSS_BELOW = "ma_cross_below"
    RECOMMENDATION_CHANGE = "recommendation_change"  # a new run changed the action


THRESHOLD_CONDITIONS = frozenset(
    {
        Condition.PRICE_ABOVE,
        Condition.PRICE_BELOW,
        Condition.PERCENT_MOVE_UP,
        Condition.PERCENT_MOVE_DOWN,
    }
)
MA_CONDITIONS = frozenset({Condition.MA_CROSS_ABOVE, Condition.MA_CROSS_BELOW})
TICK_CONDITIONS = THRESHOLD_CONDITIONS | MA_CONDITIONS


class Decision(StrEnum):
    NONE = "none"
    FIRE = "fire"
    REARM = "rearm"


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: UUID
    owner_id: str
    ticker: str
    condition: Condition
    threshold: Decimal | None
    window_days: int | None
    cooldown_seconds: int
    active: bool
    armed: bool
    last_fired_at: datetime | None
    created_at: datetime
    state_tick: int | None = None  # the tick (epoch ms) of the last armed/disarmed change
    # A rule on a watchlist has no ticker ("") and one child per ticker of the list (each
    # with ``parent_id``): the children are what is evaluated and fired.
    watchlist_id: UUID | None = None
    parent_id: UUID | None = None

    @property
    def on_ticks(self) -> bool:
        return bool(self.ticker) and self.condition in TICK_CONDITIONS

    @property
    def alert_rule_id(self) -> UUID:
        """The rule an alert names: the user's rule (a child's parent)."""
        return self.parent_id or self.id

    def trigger_key(self, key: str) -> str:
        """What makes one alert of this rule unique: the children of one rule share its
        id in the alerts, so theirs name the ticker too."""
        return f"{self.ticker}:{key}" if self.parent_id else key

    def cooled_down(self, now: datetime) -> bool:
        return self.last_fired_at is None or now - self.last_fired_at >= timedelta(
            seconds=self.cooldown_seconds
        )

    def fired(self, now: datetime, tick: int | None = None) -> AlertRule:
        return replace(self, armed=False, last_fired_at=now, state_tick=tick)

    def rearmed(self, tick: int | None = None) -> AlertRule:
        return replace(self, armed=True, state_tick=tick)

    def newer_state_than(self, other: AlertRule) -> bool:
        """Whether this copy's armed state comes from a later tick than ``other``'s."""
        return (self.state_tick or 0) > (other.state_tick or 0)


@dataclass(frozen=True, slots=True)
class Observation:
    """What a tick tells a rule: the price, the day's change and, if known, the SMA."""

    price: float
    change_percent: float
    ts: int  # epoch ms of the tick
    moving_average: float | None = None


def is_met(rule: AlertRule, obs: Observation) -> bool | None:
    """Whether ``rule``'s condition holds for ``obs``; None when it cannot be told
    (a moving-average rule whose average is not known yet)."""
    condition = rule.condition
    if condition in MA_CONDITIONS:
        if obs.moving_average is None:
            return None
        if condition is Condition.MA_CROSS_ABOVE:
            return obs.price > obs.moving_average
        return obs.price < obs.moving_average
    assert rule.threshold is not None
    threshold = float(rule.threshold)
    if condition is Condition.PRICE_ABOVE:
        return obs.price > threshold
    if condition is Condition.PRICE_BELOW:
        return obs.price < threshold
    if condition is Condition.PERCENT_MOVE_UP:
        return obs.change_percent >= threshold
    if condition is Condition.PERCENT_MOVE_DOWN:
        return obs.change_percent <= -threshold
    return None


def decide(rule: AlertRule, met: bool | None, now: datetime) -> Decision:
    """The transition ``rule`` takes given whether its condition is ``met`` now."""
    if met is None or not rule.active:
        return Decision.NONE
    if met and rule.armed and rule.cooled_down(now):
        return Decision.FIRE
    if not met and not rule.armed:
        return Decision.REARM
    return Decision.NONE


def describe(rule: AlertRule, obs: Observation) -> str:
    """The sentence a user reads when ``rule`` fires on ``obs``."""
    price = f"{obs.price:,.2f}"
    match rule.condition:
        case Condition.PRICE_ABOVE:
            return f"{rule.ticker} rose above {rule.threshold} (last {price})."
        case Condition.PRICE_BELOW:
            return f"{rule.ticker} fell below {rule.threshold} (last {price})."
        case Condition.PERCENT_MOVE_UP:
            return f"{rule.ticker} is up {obs.change_percent:.2f}% today (last {price})."
        case Condition.PERCENT_MOVE_DOWN:
            return f"{rule.ticker} is down {-obs.change_percent:.2f}% today (last {price})."
        case Condition.MA_CROSS_ABOVE:
            return (
                f"{rule.ticker} crossed above its {rule.window_days}-day average "
                f"{obs.moving_average:,.2f} (last {price})."
            )
        case Condition.MA_CROSS_BELOW:
            return (
                f"{rule.ticker} crossed below its {rule.window_days}-day average "
                f"{obs.moving_average:,.2f} (last {price})."
            )
    return f"{rule.ticker}: {rule.condition}."


@dataclass(frozen=True, slots=True)
class RecommendationChange:
    ticker: str
    previous_action: str
    action: str
    run_id: str


def recommendation_changes(
    calls: list[tuple[str, str, str | None]], run_id: str
) -> list[RecommendationChange]:
    """The ``(ticker, action, previous_action)`` calls that change a known action (a first
    call on a ticker, or the same action again, is no change)."""
    return [
        RecommendationChange(ticker.upper(), previous.upper(), action.upper(), run_id)
        for ticker, action, previous in calls
        if previous is not None and previous.upper() != action.upper()
    ]


def describe_recommendation(change: RecommendationChange) -> str:
    return (
        f"{change.ticker}: the recommendation changed from {change.previous_action}"
        f" to {change.action}."
    )


def simple_moving_average(closes: list[float], window: int) -> float | None:
    """The mean of the last ``window`` closes; None when there are fewer."""
    if window <= 0 or len(closes) < window:
        return None
    recent = closes[-window:]
    return sum(recent) / window

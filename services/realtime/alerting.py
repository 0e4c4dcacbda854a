"""Alert rules evaluated on the live stream, fired once, fanned out to the owner's sockets.

- :class:`RuleEvaluator` keeps the active tick rules in memory (loaded at start, reloaded
  when any node says a rule changed, and every ``reload_seconds``), asks the node's
  :class:`~services.realtime.streams.hub.TickHub` for the tickers they watch, and decides
  on each tick (``domain.decide``). Only transitions touch the database, and the database
  arbitrates them, so when several nodes evaluate the same tick one alert is written.
- :class:`RecommendationAlerts` reads ``recommendations.run.completed`` with a durable
  consumer shared by all nodes and fires ``recommendation_change`` rules (idempotent with
  the inbox). Until the stream exists (recommendations declares it) it retries quietly.
- :class:`AlertFanout` subscribes to ``alerts.user.*`` once per node and pushes each alert
  to that user's sockets on this node.

A fired alert is committed before it is published (core NATS); a node dying in between
loses only the live push, not the alert: clients resume from the last id they saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.realtime import repository
from services.realtime.domain import (
    MA_CONDITIONS,
    AlertRule,
    Condition,
    Decision,
    Observation,
    decide,
    describe,
    describe_recommendation,
    is_met,
    recommendation_changes,
    simple_moving_average,
)
from services.realtime.events import (
    ALERTS_WILDCARD,
    RULES_CHANGED,
    AlertFired,
    RuleChanged,
    alerts_subject,
)
from services.realtime.feeds import (
    HISTORY_RPC,
    RUN_COMPLETED,
    HistoryReply,
    HistoryRequest,
    RunCompleted,
    Tick,
)
from services.realtime.repository import StoredAlert
from services.realtime.streams.hub import TickHub
from shared.db.transaction import BACKGROUND_CONNECTION_ERRORS
from shared.errors import AppError
from shared.messaging import Bus, Delivered, Event, StreamAttachment, Subscription, claim_once

logger = logging.getLogger("realtime.alerts")

MAX_QUEUED_TRANSITIONS = 10_000


def fired_message(alert: StoredAlert) -> AlertFired:
    return AlertFired(
        id=alert.id,
        owner_id=alert.owner_id,
        rule_id=alert.rule_id,
        ticker=alert.ticker,
        condition=alert.condition,
        message=alert.message,
        data=alert.data,
        fired_at=alert.fired_at,
    )


async def publish_alert(bus: Bus, alert: StoredAlert) -> None:
    try:
        await bus.publish(alerts_subject(alert.owner_id), fired_message(alert))
    except AppError as exc:
        # Committed already: the owner gets it on resume.
        logger.warning("alert %d not pushed live: %s", alert.id, exc.message)


class MovingAverages:
    """Daily simple moving averages, from market's daily closes, cached per UTC day."""

    def __init__(self, bus: Bus, *, retry_seconds: float = 300.0) -> None:
        self._bus = bus
        self._retry = retry_seconds
        self._values: dict[tuple[str, int], tuple[date, float | None]] = {}
        self._failed: dict[tuple[str, int], float] = {}
        self._loading: set[tuple[str, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, ticker: str, window: int) -> float | None:
        """The average if known for today; otherwise start loading it and say None."""
        key = (ticker, window)
        today = datetime.now(UTC).date()
        known = self._values.get(key)
        if known is not None and known[0] == today:
            return known[1]
        if key not in self._loading and time.monotonic() >= self._failed.get(key, 0.0):
            self._loading.add(key)
            task = asyncio.create_task(self._load(key, today))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return known[1] if known is not None else None

    async def _load(self, key: tuple[str, int], today: date) -> None:
        ticker, window = key
        # Closes of completed sessions: ``window`` trading days fit in twice as many
        # calendar days (weekends, holidays), plus a margin.
        request = HistoryRequest(
            tickers=[ticker],
            start=today - timedelta(days=2 * window + 10),
            end=today - timedelta(days=1),
        )
        try:
            reply = await self._bus.request(HISTORY_RPC, request, HistoryReply)
            closes = next((s.closes for s in reply.series if s.ticker == ticker), [])
            self._values[key] = (today, simple_moving_average(closes, window))
        except AppError as exc:
            self._failed[key] = time.monotonic() + self._retry
            logger.info("no daily history for %s yet (%s)", ticker, exc.message)
        finally:
            self._loading.discard(key)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Transition:
    decision: Decision
    rule: AlertRule
    obs: Observation


class RuleEvaluator:
    """Evaluates the active tick rules on this node; see the module docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        hub: TickHub,
        *,
        reload_seconds: float = 60.0,
        averages: MovingAverages | None = None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._hub = hub
        self._reload_seconds = reload_seconds
        self._averages = averages or MovingAverages(bus)
        self._rules: dict[UUID, AlertRule] = {}
        self._by_ticker: dict[str, dict[UUID, AlertRule]] = {}
        self._queue: asyncio.Queue[_Transition] = asyncio.Queue(MAX_QUEUED_TRANSITIONS)
        self._tasks: list[asyncio.Task[None]] = []
        self._changes: Subscription | None = None
        self.fired = 0

    async def start(self) -> None:
        self._changes = await self._bus.subscribe(RULES_CHANGED, RuleChanged, self._on_changed)
        await self.reload()
        self._hub.add_listener(self.on_tick)
        self._tasks = [
            asyncio.create_task(self._work(), name="alert-transitions"),
            asyncio.create_task(self._reload_loop(), name="alert-rules-reload"),
        ]

    async def stop(self) -> None:
        if self._changes is not None:
            await self._changes.unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._averages.stop()

    # -- the rule set ----------------------------------------------------------------------

    async def notify_changed(self, rule: AlertRule | None, rule_id: UUID, owner_id: str) -> None:
        """After a commit that changed ``rule_id``: update this node, then tell the others."""
        await self._apply(rule_id, rule)
        try:
            await self._bus.publish(RULES_CHANGED, RuleChanged(rule_id=rule_id, owner_id=owner_id))
        except AppError as exc:
            logger.warning("rule change not announced (%s); nodes reload within a minute", exc)

    async def _on_changed(self, change: RuleChanged, _: Delivered) -> None:
        try:
            async with self._pool.acquire() as conn:
                rule = await repository.get(conn, change.rule_id)
        except BACKGROUND_CONNECTION_ERRORS as exc:
            logger.warning("rule change not applied now (%s); the next reload applies it", exc)
            return
        await self._apply(change.rule_id, rule)

    async def _apply(self, rule_id: UUID, rule: AlertRule | None) -> None:
        old = self._rules.pop(rule_id, None)
        if old is not None:
            self._by_ticker[old.ticker].pop(rule_id, None)
            if not self._by_ticker[old.ticker]:
                del self._by_ticker[old.ticker]
                await self._hub.release([old.ticker])
        if rule is not None and rule.active and rule.on_ticks:
            self._rules[rule_id] = rule
            first = rule.ticker not in self._by_ticker
            self._by_ticker.setdefault(rule.ticker, {})[rule_id] = rule
            if first:
                await self._hub.acquire([rule.ticker])

    async def _refresh(self, rule_id: UUID, stored: AlertRule | None) -> None:
        """Take the stored copy of a rule unless ours has a newer armed state: this node
        may already have decided later ticks than the ones the database has seen."""
        local = self._rules.get(rule_id)
        if stored is not None and local is not None and local.newer_state_than(stored):
            return
        await self._apply(rule_id, stored)

    async def reload(self) -> None:
        async with self._pool.acquire() as conn:
            rules = await repository.list_active(conn)
        fresh = {rule.id: rule for rule in rules if rule.on_ticks}
        for rule_id in [r for r in self._rules if r not in fresh]:
            await self._apply(rule_id, None)
        for rule_id, rule in fresh.items():
            await self._refresh(rule_id, rule)

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self._reload_seconds)
            try:
                await self.reload()
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("could not reload alert rules: %s", exc)

    # -- evaluation ------------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        """Decide every rule of the tick's ticker (synchronous; queues transitions)."""
        rules = self._by_ticker.get(tick.ticker)
        if not rules:
            return
        now = datetime.now(UTC)
        for rule in list(rules.values()):
            average = (
                self._averages.get(rule.ticker, rule.window_days)
                if rule.condition in MA_CONDITIONS and rule.window_days
                else None
            )
            obs = Observation(tick.price, tick.change_percent, tick.ts, average)
            decision = decide(rule, is_met(rule, obs), now)
            if decision is Decision.NONE:
                continue
            # Assume the transition locally now, so the next tick does not queue it again;
            # the database has the last word (_work).
            updated = (
                rule.fired(now, tick.ts) if decision is Decision.FIRE else rule.rearmed(tick.ts)
            )
            rules[rule.id] = self._rules[rule.id] = updated
            try:
                self._queue.put_nowait(_Transition(decision, rule, obs))
            except asyncio.QueueFull:
                logger.warning("alert transitions backlog full; dropped one for %s", rule.id)

    async def _work(self) -> None:
        while True:
            transition = await self._queue.get()
            try:
                await self._take(transition)
            except Exception as exc:  # one failed transition must not stop the worker
                logger.exception("alert transition failed (%s); reloading the rule", exc)
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    async with self._pool.acquire() as conn:
                        await self._refresh(
                            transition.rule.id, await repository.get(conn, transition.rule.id)
                        )

    async def _take(self, transition: _Transition) -> None:
        rule, obs = transition.rule, transition.obs
        if transition.decision is Decision.REARM:
            async with self._pool.acquire() as conn:
                if not await repository.rearm(conn, rule.id, obs.ts):
                    # A newer tick changed it already (on another node): take the stored state.
                    await self._refresh(rule.id, await repository.get(conn, rule.id))
            return
        alert = None
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                won = await repository.disarm_if_armed(conn, rule.id, obs.ts)
                if won is not None:
                    await repository.lock_owner_alerts(conn, rule.owner_id)
                    alert = await repository.insert_alert(
                        conn,
                        owner_id=rule.owner_id,
                        rule_id=rule.alert_rule_id,
                        ticker=rule.ticker,
                        condition=rule.condition.value,
                        # One alert per won transition (ticks may share a millisecond).
                        trigger_key=rule.trigger_key(f"tick:{obs.ts}:{won.last_fired_at}"),
                        message=describe(rule, obs),
                        data=_tick_data(rule, obs),
                    )
            if won is None:
                # Another node fired it (or it cooled down meanwhile): take the stored state.
                await self._refresh(rule.id, await repository.get(conn, rule.id))
        if alert is not None:
            self.fired += 1
            await publish_alert(self._bus, alert)


def _tick_data(rule: AlertRule, obs: Observation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "price": obs.price,
        "change_percent": obs.change_percent,
        "tick_ts": obs.ts,
    }
    if rule.threshold is not None:
        data["threshold"] = str(rule.threshold)
    if obs.moving_average is not None:
        data["moving_average"] = round(obs.moving_average, 4)
        data["window_days"] = rule.window_days
    if rule.watchlist_id is not None:
        data["watchlist_id"] = str(rule.watchlist_id)
    return data


class RecommendationAlerts:
    """Fires ``recommendation_change`` rules from ``recommendations.run.completed``."""

    CONSUMER = "realtime-recommendation-alerts"

    def __init__(
        self, pool: asyncpg.Pool, bus: Bus, *, stream: str, retry_seconds: float = 30.0
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._attachment = StreamAttachment(
            bus,
            stream,
            self.CONSUMER,
            RUN_COMPLETED,
            Event[RunCompleted],
            self.handle,
            retry_seconds=retry_seconds,
        )

    @property
    def attached(self) -> bool:
        return self._attachment.attached

    async def start(self) -> None:
        await self._attachment.start()

    async def stop(self) -> None:
        await self._attachment.stop()

    async def handle(self, event: Event[RunCompleted], _: Delivered) -> None:
        """Idempotent: a redelivered event changes nothing."""
        run = event.data
        alerts: list[StoredAlert] = []
        async with self._pool.acquire() as conn, conn.transaction():
            if not await claim_once(conn, self.CONSUMER, event.event_id):
                return
            calls = [(c.ticker, c.action, c.previous_action) for c in run.changes]
            changes = {c.ticker: c for c in recommendation_changes(calls, run.run_id)}
            if not changes:
                return
            rules = await repository.active_for_tickers(
                conn, Condition.RECOMMENDATION_CHANGE, sorted(changes)
            )
            for rule in sorted(rules, key=lambda r: (r.owner_id, str(r.id))):
                change = changes[rule.ticker]
                await repository.lock_owner_alerts(conn, rule.owner_id)
                data: dict[str, Any] = {
                    "previous_action": change.previous_action,
                    "action": change.action,
                    "run_id": run.run_id,
                }
                if rule.watchlist_id is not None:
                    data["watchlist_id"] = str(rule.watchlist_id)
                alert = await repository.insert_alert(
                    conn,
                    owner_id=rule.owner_id,
                    rule_id=rule.alert_rule_id,
                    ticker=rule.ticker,
                    condition=rule.condition.value,
                    trigger_key=rule.trigger_key(f"run:{run.run_id}"),
                    message=describe_recommendation(change),
                    data=data,
                )
                if alert is not None:
                    alerts.append(alert)
        for alert in alerts:
            await publish_alert(self._bus, alert)


AlertSink = Callable[[AlertFired], None]


class AlertFanout:
    """Routes ``alerts.user.*`` to the sockets of each user on this node."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._sinks: dict[str, set[AlertSink]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._bus.subscribe(ALERTS_WILDCARD, AlertFired, self._on_alert)
        with contextlib.suppress(AppError):
            await self._bus.ping()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def add(self, owner_id: str, sink: AlertSink) -> None:
        self._sinks.setdefault(owner_id, set()).add(sink)

    def remove(self, owner_id: str, sink: AlertSink) -> None:
        sinks = self._sinks.get(owner_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[owner_id]

    async def _on_alert(self, alert: AlertFired, delivered: Delivered) -> None:
        if delivered.subject != alerts_subject(alert.owner_id):
            logger.warning("alert on %s names another owner; dropped", delivered.subject)
            return
        for sink in list(self._sinks.get(alert.owner_id, ())):
            sink(alert)


RuleChangedCallback = Callable[[AlertRule | None, UUID, str], Awaitable[None]]

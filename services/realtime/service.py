"""Use cases of alert rules and alert history, each scoped to the caller.

Rule and history use cases take the request's connection (in the request's transaction);
the WebSocket sessions' reads take the pool, since a socket is not a request."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from services.realtime import repository
from services.realtime.domain import MA_CONDITIONS, THRESHOLD_CONDITIONS, AlertRule, Condition
from services.realtime.errors import (
    AlertRuleNotFoundError,
    AlertRuleQuotaError,
    InvalidAlertRuleError,
    WatchlistNotFoundError,
)
from services.realtime.repository import StoredAlert
from services.realtime.schemas import (
    ALERT_HISTORY_CURSOR,
    AlertHistoryPosition,
    AlertRuleCreate,
    AlertRuleUpdate,
)
from shared.pagination import CursorKey

MAX_RULES_PER_USER = 100

# Told after commit that a rule changed, so every node reloads it.
RuleChanged = Callable[[AlertRule | None, uuid.UUID, str], Awaitable[None]]


def _check_shape(condition: Condition, threshold: object, window_days: object) -> None:
    if condition in THRESHOLD_CONDITIONS and threshold is None:
        raise InvalidAlertRuleError(
            f"A {condition} rule needs a threshold.", details={"field": "threshold"}
        )
    if condition not in THRESHOLD_CONDITIONS and threshold is not None:
        raise InvalidAlertRuleError(
            f"A {condition} rule takes no threshold.", details={"field": "threshold"}
        )
    if condition in MA_CONDITIONS and window_days is None:
        raise InvalidAlertRuleError(
            f"A {condition} rule needs window_days.", details={"field": "window_days"}
        )
    if condition not in MA_CONDITIONS and window_days is not None:
        raise InvalidAlertRuleError(
            f"A {condition} rule takes no window_days.", details={"field": "window_days"}
        )


async def list_rules(conn: asyncpg.Connection, owner_id: str) -> list[AlertRule]:
    return await repository.list_for_owner(conn, owner_id)


async def covered(
    conn: asyncpg.Connection, rules: list[AlertRule]
) -> dict[uuid.UUID, tuple[str, ...]]:
    """The tickers each watchlist rule of ``rules`` applies to now (by watchlist id)."""
    ids = sorted({r.watchlist_id for r in rules if r.watchlist_id is not None})
    return await repository.watchlist_tickers(conn, ids) if ids else {}


async def sync_children(
    conn: asyncpg.Connection, parent: AlertRule, tickers: tuple[str, ...], changed: RuleChanged
) -> None:
    """Make ``parent``'s children one per ticker of ``tickers``: the ones gone deleted,
    the new ones made with the parent's settings (armed). Each change is told to
    ``changed`` (after commit, for the evaluators)."""
    have = {c.ticker for c in await repository.children(conn, parent.id)}
    gone = sorted(have - set(tickers))
    for child_id in await repository.delete_children(conn, parent.id, gone) if gone else []:
        await changed(None, child_id, parent.owner_id)
    for ticker in tickers:
        if ticker in have:
            continue
        child = await repository.insert(
            conn,
            rule_id=uuid.uuid4(),
            owner_id=parent.owner_id,
            ticker=ticker,
            condition=parent.condition,
            threshold=parent.threshold,
            window_days=parent.window_days,
            cooldown_seconds=parent.cooldown_seconds,
            watchlist_id=parent.watchlist_id,
            parent_id=parent.id,
            active=parent.active,
        )
        await changed(child, child.id, parent.owner_id)


async def _owned_watchlist(
    conn: asyncpg.Connection, owner_id: str, watchlist_id: uuid.UUID
) -> tuple[str, ...]:
    known = await repository.watchlist(conn, watchlist_id)
    if known is None or known.deleted or known.owner_id != owner_id:
        # Another user's list is indistinguishable from a missing one.
        raise WatchlistNotFoundError(
            f"No watchlist {watchlist_id} of yours (a list made a moment ago may take a"
            " second to reach alerts; retry).",
            details={"watchlist_id": str(watchlist_id)},
        )
    return known.tickers


async def get_rule(conn: asyncpg.Connection, owner_id: str, rule_id: uuid.UUID) -> AlertRule:
    rule = await repository.get_owned(conn, rule_id, owner_id)
    if rule is None:
        # Another user's rule is indistinguishable from a missing one.
        raise AlertRuleNotFoundError(f"No alert rule {rule_id}.")
    return rule


async def create_rule(
    conn: asyncpg.Connection, owner_id: str, data: AlertRuleCreate, changed: RuleChanged
) -> AlertRule:
    _check_shape(data.condition, data.threshold, data.window_days)
    if (data.ticker is None) == (data.watchlist_id is None):
        raise InvalidAlertRuleError(
            "A rule names either a ticker or a watchlist_id.", details={"field": "ticker"}
        )
    # Serialise one owner's creations so the quota cannot be overrun by a burst.
    await repository.lock_owner_rules(conn, owner_id)
    if await repository.count_for_owner(conn, owner_id) >= MAX_RULES_PER_USER:
        raise AlertRuleQuotaError(
            f"You can keep at most {MAX_RULES_PER_USER} alert rules.",
            details={"limit": MAX_RULES_PER_USER},
        )
    tickers: tuple[str, ...] = ()
    if data.watchlist_id is not None:
        tickers = await _owned_watchlist(conn, owner_id, data.watchlist_id)
    rule = await repository.insert(
        conn,
        rule_id=uuid.uuid4(),
        owner_id=owner_id,
        ticker=data.ticker,
        condition=data.condition,
        threshold=data.threshold,
        window_days=data.window_days,
        cooldown_seconds=data.cooldown_seconds,
        watchlist_id=data.watchlist_id,
    )
    if data.watchlist_id is not None:
        await sync_children(conn, rule, tickers, changed)
    await changed(rule, rule.id, owner_id)
    return rule


async def update_rule(
    conn: asyncpg.Connection,
    owner_id: str,
    rule_id: uuid.UUID,
    data: AlertRuleUpdate,
    changed: RuleChanged,
) -> AlertRule:
    current = await repository.get_owned(conn, rule_id, owner_id)
    if current is None:
        raise AlertRuleNotFoundError(f"No alert rule {rule_id}.")
    fields = data.model_fields_set
    threshold = data.threshold if "threshold" in fields else current.threshold
    window_days = data.window_days if "window_days" in fields else current.window_days
    _check_shape(current.condition, threshold, window_days)
    rule = await repository.update_owned(
        conn,
        rule_id,
        owner_id,
        threshold=threshold,
        window_days=window_days,
        cooldown_seconds=(
            data.cooldown_seconds if data.cooldown_seconds is not None else current.cooldown_seconds
        ),
        active=data.active if data.active is not None else current.active,
    )
    assert rule is not None
    if rule.watchlist_id is not None:
        for child in await repository.update_children(
            conn,
            rule.id,
            threshold=rule.threshold,
            window_days=rule.window_days,
            cooldown_seconds=rule.cooldown_seconds,
            active=rule.active,
        ):
            await changed(child, child.id, owner_id)
    await changed(rule, rule.id, owner_id)
    return rule


async def delete_rule(
    conn: asyncpg.Connection, owner_id: str, rule_id: uuid.UUID, changed: RuleChanged
) -> None:
    children = await repository.children(conn, rule_id)
    if not await repository.delete_owned(conn, rule_id, owner_id):
        raise AlertRuleNotFoundError(f"No alert rule {rule_id}.")
    for child in children:  # deleted with it (ON DELETE CASCADE)
        await changed(None, child.id, owner_id)
    await changed(None, rule_id, owner_id)


async def alert_history(
    conn: asyncpg.Connection,
    owner_id: str,
    *,
    limit: int,
    cursor: str | None,
    cursor_key: CursorKey,
) -> tuple[list[StoredAlert], str | None]:
    """The caller's alerts, newest first, a page at a time."""
    before = ALERT_HISTORY_CURSOR.decode(cursor_key, cursor).before if cursor else None
    items = await repository.alerts_before(conn, owner_id, before, limit + 1)
    next_cursor = None
    if len(items) > limit:
        position = AlertHistoryPosition(before=items[limit - 1].id)
        next_cursor = ALERT_HISTORY_CURSOR.encode(cursor_key, position)
    return items[:limit], next_cursor


async def alerts_missed(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (WebSocket sessions, not requests)
    owner_id: str,
    after_id: int,
    limit: int,
) -> list[StoredAlert]:
    """What ``owner_id`` missed after the alert ``after_id``, oldest first."""
    async with pool.acquire() as conn:  # lint-skip: request-takes-pool (WebSocket)
        return await repository.alerts_after(conn, owner_id, after_id, limit)


async def latest_alerts(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (WebSocket sessions, not requests)
    owner_id: str,
    limit: int,
) -> list[StoredAlert]:
    """``owner_id``'s newest ``limit`` alerts, oldest first."""
    async with pool.acquire() as conn:  # lint-skip: request-takes-pool (WebSocket)
        return list(reversed(await repository.alerts_before(conn, owner_id, None, limit)))

"""When the provider sync runs: after each NYSE session's close (early closes included, from
the exchange calendar) plus a delay, every session not synced yet, oldest first, at most
``catchup`` of them."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from services.market.domain import calendar


def due_sessions(
    now: datetime,
    *,
    delay: timedelta,
    last_synced: date | None,
    last_stored: date | None,
    catchup: int,
) -> list[date]:
    """Sessions to sync at ``now``: those whose close + ``delay`` has passed, after the last
    synced one (or, before the first sync, after the last bar stored for the securities the
    sync covers; with neither, the latest session alone), the last ``catchup`` of them."""
    latest = calendar.last_closed_session(now - delay)
    after = last_synced or last_stored
    if after is None:
        return [latest]
    if after >= latest:
        return []
    days = calendar.sessions(after + timedelta(days=1), latest)
    return [calendar.to_date(d) for d in days[-catchup:]]


def next_run(now: datetime, *, delay: timedelta) -> datetime:
    """When the next session becomes due: its close (early or not) plus ``delay``."""
    latest = calendar.last_closed_session(now - delay)
    _, close = calendar.session_bounds(calendar.next_session(latest))
    return close + delay

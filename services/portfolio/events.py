"""What the portfolio service publishes. It owns these subjects and payloads.

JetStream stream ``PORTFOLIO`` (through the outbox, written in the transaction of the
change, ``Nats-Msg-Id = event_id``)::

    portfolio.watchlist.changed      Event[WatchlistChanged]: a watchlist was created,
                                     renamed, its tickers changed, or it was deleted
                                     (``deleted: true``, no tickers). Each event carries
                                     the whole list and its version, so a consumer keeps
                                     the newest version it has seen and needs no other.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field

from shared.messaging import Event

SOURCE = "portfolio"
STREAM = "PORTFOLIO"
WATCHLIST_CHANGED = "portfolio.watchlist.changed"
WATCHLIST_CHANGED_VERSION = 1
# Named one by one: a wildcard would also capture request/reply subjects (portfolio.rpc.*),
# and a stream acknowledges what it captures.
STREAM_SUBJECTS = [WATCHLIST_CHANGED]


class WatchlistChanged(BaseModel):
    """A watchlist as it is after the change (``deleted``: it is gone)."""

    watchlist_id: UUID
    owner_id: str
    name: str
    tickers: list[str] = Field(description="In the list's order; empty when deleted.")
    version: int = Field(ge=1, description="Increases with every change, deletion included.")
    deleted: bool = False


def watchlist_changed(payload: WatchlistChanged) -> Event[WatchlistChanged]:
    return Event[WatchlistChanged](
        event_type=WATCHLIST_CHANGED,
        source=SOURCE,
        schema_version=WATCHLIST_CHANGED_VERSION,
        data=payload,
    )

"""Market's corporate actions and recommendation calls as they concern a ledger. Pure.

- A **split** from market (``value`` new shares per old share, a float: 2.0, 1.5, 0.1)
  becomes a SPLIT entry of ``split_to`` for ``split_from`` at the start of its ex-date
  (00:00 UTC: a trade dated on the ex-date is at the new price, so after the split). It
  applies to a portfolio that held the ticker just before then; one opened on or after
  the ex-date bought post-split shares. A ledger that already has a SPLIT of the ticker on
  that day (recorded by hand) is not split again.
- A **SELL flag** concerns the portfolios holding the ticker now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fractions import Fraction
from uuid import UUID

from services.portfolio.domain.ledger import ZERO, Entry, Kind, active, replay

# Ratios market announces are whole numbers or their inverses (2, 3, 10, 1/10) or simple
# fractions (3/2); a larger denominator is a float's noise, not a real split.
MAX_SPLIT_DENOMINATOR = 1_000


def split_ratio(value: float) -> tuple[int, int]:
    """(split_to, split_from) of a split giving ``value`` new shares per old share."""
    if not value > 0:
        raise ValueError(f"a split ratio must be positive, not {value!r}")
    ratio = Fraction(repr(value)).limit_denominator(MAX_SPLIT_DENOMINATOR)
    return ratio.numerator, ratio.denominator


def ex_moment(ex_date: date) -> datetime:
    """When a split with this ex-date takes effect in the ledger."""
    return datetime.combine(ex_date, time(0), tzinfo=UTC)


def held_before(entries: Iterable[Entry], ticker: str, moment: datetime) -> Decimal:
    """Shares of ``ticker`` the ledger's active entries hold just before ``moment``."""
    earlier = [e for e in active(entries) if e.executed_at < moment]
    position = replay(earlier).positions.get(ticker)
    return position.quantity if position is not None else ZERO


def split_on(entries: Iterable[Entry], ticker: str, day: date) -> Entry | None:
    """An active SPLIT of ``ticker`` executed on ``day`` (UTC), if the ledger has one."""
    for entry in active(entries):
        if (
            entry.kind is Kind.SPLIT
            and entry.ticker == ticker
            and entry.executed_at.astimezone(UTC).date() == day
        ):
            return entry
    return None


def split_entry(ticker: str, ex_date: date, value: float, *, entry_id: UUID, seq: int) -> Entry:
    """The SPLIT entry of market's split of ``ticker`` on ``ex_date``."""
    split_to, split_from = split_ratio(value)
    return Entry(
        id=entry_id,
        seq=seq,
        kind=Kind.SPLIT,
        executed_at=ex_moment(ex_date),
        amount=ZERO,
        ticker=ticker,
        split_to=split_to,
        split_from=split_from,
        note=f"{split_to}-for-{split_from} split, ex-date {ex_date.isoformat()} (market)",
    )

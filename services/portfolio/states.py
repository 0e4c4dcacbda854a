"""Ledger states kept in memory between requests, keyed by portfolio and version.

Every read and every change of a portfolio needs the state its ledger adds up to; a
replay of a few thousand entries costs tens of milliseconds. A version of a portfolio
never changes once committed (every change bumps it, under the row lock), so the state
of (portfolio, version) can be kept and reused: a read at the same version skips the
ledger, and a change appends its entry to the state instead of replaying everything
(:func:`domain.extend`). Only committed states go in: states read from the database
(which shows committed rows only), and the state after a change once its transaction
has committed (``after_commit``). Each instance keeps its own; another instance's change
is a new version here, so a miss, never a stale hit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

from services.portfolio.domain import Ledger


class LedgerStates:
    """The latest known state of up to ``capacity`` portfolios, least recently used out.
    States handed out are shared: callers read them, or :meth:`Ledger.fork` to change."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._states: OrderedDict[UUID, tuple[int, Ledger]] = OrderedDict()

    def get(self, portfolio_id: UUID, version: int) -> Ledger | None:
        found = self._states.get(portfolio_id)
        if found is None or found[0] != version:
            return None
        self._states.move_to_end(portfolio_id)
        return found[1]

    def put(self, portfolio_id: UUID, version: int, ledger: Ledger) -> None:
        known = self._states.get(portfolio_id)
        if known is not None and known[0] > version:
            return  # a newer version is already known
        self._states[portfolio_id] = (version, ledger)
        self._states.move_to_end(portfolio_id)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Ledgers:
    """What a request uses for ledger states: the part's :class:`LedgerStates`, and how
    to keep a new state once the request's transaction has committed."""

    states: LedgerStates
    after_commit: Callable[[Callable[[], Awaitable[None]]], None]

    def keep_after_commit(self, portfolio_id: UUID, version: int, ledger: Ledger) -> None:
        async def keep() -> None:
            self.states.put(portfolio_id, version, ledger)

        self.after_commit(keep)

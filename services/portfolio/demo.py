"""Demo data: each demo user's default portfolio with a few years of history.

``bourse up`` calls :func:`seed_demo` once the parts answer ``/ready`` and the gateway has
made the demo accounts, with their user ids (``owners``) and the part's NATS. Everything
comes from the market context over NATS, never from its schema: the universe's listings
(``market.rpc.universe``), its corporate actions (``market.rpc.closes``) and the
*unadjusted* simulated closes every trade is priced at (``market.rpc.history``). The
history (:func:`plan_history`, pure) is deposits, buys, a later top-up buy, a sale of half
a position, the dividends market paid on the shares held at each ex-date and the splits
of held tickers on their ex-dates. It is written through the ledger's own rules (replayed
before writing: cash never negative, no oversell), in one transaction per user, with its
events; a user whose default portfolio already has entries is left alone, so running it
again changes nothing. Without owners (the test suite seeds before any user exists) it
does nothing.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from services.portfolio import announcements, domain, repository, service
from services.portfolio.domain import Entry, Kind
from services.portfolio.domain import actions as corporate
from services.portfolio.market import MarketQuotes
from shared.messaging import Bus, connect_bus

UNIVERSE_RPC = "market.rpc.universe"
CLOSES_RPC = "market.rpc.closes"
YEARS = 3
CANDIDATES = 300  # listed securities whose actions are looked at
OPENING_DEPOSIT = Decimal("50000")
QUARTERLY_DEPOSIT = Decimal("1500")
FEE = Decimal("1")
_SEQ = 2**62


class UniverseRequest(BaseModel):
    listed_only: bool = True
    cursor: str | None = None


class Listing(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: str
    sector: str


class UniverseReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    securities: list[Listing]
    next_cursor: str | None = None


class ClosesRequest(BaseModel):
    tickers: list[str]
    start: date
    end: date
    cursor: int | None = None


class ActionColumns(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ticker: list[str]
    ex_date: list[date]
    kind: list[str]
    value: list[float]


class ClosesReply(BaseModel):
    """Only the corporate actions are read; the closes come unadjusted from history."""

    model_config = ConfigDict(extra="ignore")

    actions: ActionColumns
    next_cursor: int | None = Field(None)


@dataclass(frozen=True, slots=True)
class MarketAction:
    ticker: str
    ex_date: date
    kind: str
    value: float


def _say(message: str) -> None:
    sys.stdout.write(f"portfolio: {message}\n")
    sys.stdout.flush()


# --- the plan (pure) --------------------------------------------------------------------


def choose_tickers(
    listings: Sequence[Listing], actions: Sequence[MarketAction], start: date, end: date
) -> list[str]:
    """A split ticker (split well inside the window) and three dividend payers of other
    sectors, deterministic for the same universe."""
    sector = {item.ticker: item.sector for item in listings}
    inside = [a for a in actions if start + timedelta(days=60) <= a.ex_date <= end]
    chosen: list[str] = []
    # A forward split if there is one (the usual kind), else a reverse split.
    splits = sorted(
        (a for a in inside if a.kind == "split"), key=lambda a: (a.value < 1, a.ex_date)
    )
    if splits:
        chosen.append(splits[0].ticker)
    paid: dict[str, int] = {}
    for a in inside:
        if a.kind == "dividend":
            paid[a.ticker] = paid.get(a.ticker, 0) + 1
    payers = sorted(paid, key=lambda t: (-paid[t], t))
    for ticker in payers:
        if len(chosen) == 4:
            break
        if ticker not in chosen and sector.get(ticker) not in {sector.get(c) for c in chosen}:
            chosen.append(ticker)
    for item in listings:  # a universe with few payers: fill with any listed ticker
        if len(chosen) == 4:
            break
        if item.ticker not in chosen:
            chosen.append(item.ticker)
    return chosen


def _close_on(closes: list[tuple[date, Decimal]], day: date) -> tuple[date, Decimal] | None:
    """The first session on or after ``day`` and its close."""
    return next(((d, c) for d, c in closes if d >= day), None)


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def plan_history(
    tickers: Sequence[str],
    closes: dict[str, list[tuple[date, Decimal]]],
    actions: Sequence[MarketAction],
    start: date,
    today: date,
) -> list[Entry]:
    """The demo ledger, oldest first: valid by construction, checked by replay."""
    entries: list[Entry] = []
    state = domain.Ledger()

    def add(entry: Entry) -> None:
        domain.apply(state, entry)  # raises if the plan broke a rule: a bug here
        entries.append(entry)

    def new(kind: Kind, at: datetime, **fields: object) -> Entry:
        return Entry(id=uuid.uuid4(), seq=_SEQ + len(entries), kind=kind, executed_at=at,
                     **fields)  # type: ignore[arg-type]  # fmt: skip

    def trade(kind: Kind, ticker: str, quantity: Decimal, day: date, note: str) -> bool:
        found = _close_on(closes.get(ticker, []), day)
        if found is None or quantity <= 0:
            return False
        on, close = found
        amount = domain.trade_amount(kind, quantity, close, FEE)
        if kind is Kind.BUY and state.cash + amount < 0:
            return False
        add(new(kind, _at(on, 20), amount=amount, ticker=ticker, quantity=quantity,
                price=domain.price(close), fee=FEE, note=note))  # fmt: skip
        return True

    def shares(ticker: str, budget: Decimal, day: date) -> Decimal:
        found = _close_on(closes.get(ticker, []), day)
        if found is None:
            return Decimal(0)
        return (budget / found[1]).quantize(Decimal(1), rounding=ROUND_DOWN)

    # Dated things that happen on their own: corporate actions, quarterly deposits, and the
    # user's decisions. Processed day by day so each sees what is held then.
    plan: list[tuple[datetime, int, str, object]] = []
    for a in actions:
        if a.ticker in tickers and start < a.ex_date <= today:
            hour = 0 if a.kind == "split" else 16  # a split at the open of its ex-date
            plan.append((_at(a.ex_date, hour), 1, "action", a))
    day = start + timedelta(days=91)
    while day <= today:
        plan.append((_at(day, 9), 0, "deposit", day))
        day += timedelta(days=91)
    top_up, trim = start + timedelta(days=365), start + timedelta(days=int(365 * 1.8))
    if top_up < today:
        plan.append((_at(top_up, 10), 2, "top-up", top_up))
    if trim < today:
        plan.append((_at(trim, 10), 2, "trim", trim))
    plan.sort(key=lambda item: (item[0], item[1]))

    add(new(Kind.DEPOSIT, _at(start, 9), amount=OPENING_DEPOSIT, note="opening deposit"))
    budget = (OPENING_DEPOSIT * Decimal("0.9") / max(len(tickers), 1)).quantize(Decimal(1))
    for ticker in tickers:
        trade(Kind.BUY, ticker, shares(ticker, budget, start), start, "initial allocation")
    for at, _, what, item in plan:
        if what == "deposit":
            add(new(Kind.DEPOSIT, at, amount=QUARTERLY_DEPOSIT, note="quarterly saving"))
        elif what == "top-up" and len(tickers) > 1:
            ticker = tickers[1]
            trade(Kind.BUY, ticker, shares(ticker, Decimal(4000), at.date()), at.date(), "top-up")
        elif what == "trim" and len(tickers) > 2:
            ticker = tickers[2]
            held = state.positions.get(ticker)
            if held is not None and held.quantity >= 2:
                half = (held.quantity / 2).quantize(Decimal(1), rounding=ROUND_DOWN)
                trade(Kind.SELL, ticker, half, at.date(), "took profits on half")
        elif what == "action":
            assert isinstance(item, MarketAction)
            held = state.positions.get(item.ticker)
            if held is None or held.quantity <= 0:
                continue
            if item.kind == "split":
                split_to, split_from = corporate.split_ratio(item.value)
                add(new(Kind.SPLIT, at, amount=domain.ZERO, ticker=item.ticker,
                        split_to=split_to, split_from=split_from,
                        note=f"{split_to}-for-{split_from} split"))  # fmt: skip
            elif item.kind == "dividend":
                amount = domain.money(held.quantity * Decimal(repr(item.value)))
                if amount > 0:
                    add(new(Kind.DIVIDEND, at, amount=amount, ticker=item.ticker,
                            note=f"{item.value} per share"))  # fmt: skip
    domain.replay(entries)  # the ledger's own check, as a request's would be
    return entries


# --- asking market ----------------------------------------------------------------------


async def _listings(bus: Bus) -> list[Listing]:
    reply = await bus.request(UNIVERSE_RPC, UniverseRequest(), UniverseReply, timeout=30)
    return reply.securities


async def _actions(bus: Bus, tickers: list[str], start: date, end: date) -> list[MarketAction]:
    found: list[MarketAction] = []
    cursor: int | None = None
    while True:
        request = ClosesRequest(tickers=tickers, start=start, end=end, cursor=cursor)
        reply = await bus.request(CLOSES_RPC, request, ClosesReply, timeout=60)
        columns = reply.actions
        found += [
            MarketAction(t, d, k, v)
            for t, d, k, v in zip(
                columns.ticker, columns.ex_date, columns.kind, columns.value, strict=True
            )
        ]
        cursor = reply.next_cursor
        if cursor is None:
            return found


@dataclass(frozen=True, slots=True)
class DemoHistory:
    tickers: list[str]
    closes: dict[str, list[tuple[date, Decimal]]]
    actions: list[MarketAction]
    start: date
    today: date


async def ask_market(bus: Bus, today: date) -> DemoHistory:
    """The tickers, their unadjusted closes and their actions, from market over NATS."""
    listings = (await _listings(bus))[:CANDIDATES]
    start = today - timedelta(days=365 * YEARS - 30)
    actions = await _actions(bus, [item.ticker for item in listings], start, today)
    tickers = choose_tickers(listings, actions, start, today)
    market = MarketQuotes(bus, timeout=30, history_timeout=60)
    book = await market.closes(tickers, start, today)
    if not book.available:
        raise RuntimeError(f"market did not answer for the demo's prices: {book.problem}")
    first = min((series[0][0] for series in book.closes.values() if series), default=start)
    return DemoHistory(
        tickers=[t for t in tickers if book.closes.get(t)],
        closes=book.closes,
        actions=[a for a in actions if a.ticker in tickers],
        start=max(start, first),
        today=today,
    )


# --- writing ------------------------------------------------------------------------------


async def seed_owner(conn: asyncpg.Connection, owner_id: str, history: DemoHistory) -> bool:
    """Write the history into ``owner_id``'s default portfolio, unless it has entries;
    True if written. One transaction: all of it, with its events, or nothing."""
    async with conn.transaction():
        found = await service.default_portfolio(conn, owner_id, lock=True)
        if await repository.entries(conn, found.id):
            return False
        planned = plan_history(
            history.tickers, history.closes, history.actions, history.start, history.today
        )
        stored = [await repository.append(conn, found.id, entry) for entry in planned]
        after = domain.replay(stored)
        updated = await repository.set_balance(conn, found.id, after.cash)
        await announcements.entries_written(conn, updated, stored)
    return True


async def seed_demo(
    conn: asyncpg.Connection,
    *,
    owners: Sequence[str] = (),
    nats_url: str | None = None,
    nats_prefix: str = "",
    today: date | None = None,
) -> None:
    """Give each of ``owners`` (user ids) a default portfolio with history; see the module
    docstring."""
    if not owners or nats_url is None:
        return
    bus = await connect_bus(nats_url, name="portfolio-demo", prefix=nats_prefix)
    try:
        history = await ask_market(bus, today or datetime.now(UTC).date())
    finally:
        await bus.close()
    for owner_id in owners:
        if await seed_owner(conn, owner_id, history):
            _say(f"demo portfolio written for user {owner_id} ({', '.join(history.tickers)})")

"""Use cases of the portfolio service.

Every use case is scoped to the caller (``owner_id``: the token's subject) and takes the
request's connection, in the transaction the request owns; none opens, commits or ends
one. Another owner's portfolio is indistinguishable from a missing one (404).

A change to a portfolio (a ledger entry, a rename) runs as:

1. the Idempotency-Key, if given, is claimed first (a retry of a finished request gets the
   stored response; the same key with a different request is refused);
2. the portfolio row is locked (``FOR UPDATE``), so changes to one portfolio are
   serialised and each validates against the last;
3. ``If-Match`` is checked against the locked version (428 missing, 412 stale);
4. the whole ledger plus the new entry is replayed by :func:`domain.replay`, which refuses
   an overdraft or an oversell anywhere in time (a back-dated SELL is checked too);
5. the row is appended, the materialised cash and the version (the ETag) are updated.

Anything refused raises, and the request's rollback leaves nothing written.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from services.portfolio import announcements, domain, ledger_csv, repository, risk
from services.portfolio.domain import Entry, Kind, LedgerRejected, Portfolio, targets
from services.portfolio.domain import performance as perf
from services.portfolio.domain import rebalance as rebalancing
from services.portfolio.domain.xray import Limits
from services.portfolio.errors import (
    IdempotencyKeyRequiredError,
    IdempotencyKeyReusedError,
    InvalidImportError,
    LedgerRefusedError,
    MarketUnavailableError,
    NoRecommendationsError,
    PortfolioNameTakenError,
    PortfolioNotFoundError,
    PreconditionRequiredError,
    RebalanceRefusedError,
    RecommendationNotFoundError,
    RecommendationsUnavailableError,
    TransactionNotFoundError,
    UnknownTickerError,
    VersionMismatchError,
)
from services.portfolio.market import MarketQuotes
from services.portfolio.schemas import (
    BENCHMARK,
    BENCHMARK_METHOD,
    BETA_METHOD,
    DRAWDOWN_METHOD,
    EXCESS_METHOD,
    IMPACT_RULE,
    MWR_METHOD,
    PORTFOLIOS_CURSOR,
    TRANSACTIONS_CURSOR,
    TWR_METHOD,
    VOLATILITY_METHOD,
    AccountFeeIn,
    CashIn,
    ClosedPositionOut,
    DividendIn,
    FollowedCall,
    ImpactPreview,
    ImportedRow,
    ImportReport,
    Performance,
    PeriodPerformance,
    PortfolioCreate,
    PortfolioOut,
    PortfolioPagePosition,
    PortfolioUpdate,
    PortfolioValuation,
    PortfolioXRay,
    PositionCreate,
    PositionOut,
    ProposedTrade,
    RebalanceLine,
    RebalanceProposal,
    RebalanceRequest,
    Recorded,
    ReturnFigure,
    ReversalCreate,
    SectorWeight,
    SellFlagOut,
    SeriesPoint,
    SplitIn,
    TradeIn,
    TransactionCreate,
    TransactionOut,
    TransactionPagePosition,
)
from services.portfolio.states import Ledgers
from shared.errors import ConflictError, ValidationFailedError
from shared.pagination import CursorKey

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
DEFAULT_NAME = "Main"
# Clocks differ; an entry a few minutes "in the future" is a skewed client, not a forecast.
FUTURE_TOLERANCE = timedelta(minutes=5)
# For the replay of a new entry before it has its database sequence number: it sorts after
# every existing entry at the same instant, as the real (larger) number will.
_UNWRITTEN_SEQ = 2**62


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A request's ``Idempotency-Key`` and the fingerprint of what it asks."""

    key: str
    fingerprint: str


def idempotency(
    key: str | None, operation: str, target: str, body: BaseModel
) -> Idempotency | None:
    """The key with the fingerprint of (operation, target, parsed body); None without a key."""
    if key is None:
        return None
    digest = hashlib.sha256(f"{operation}\n{target}\n{body.model_dump_json()}".encode()).hexdigest()
    return Idempotency(key, digest)


def idempotency_of_text(
    key: str | None, operation: str, target: str, text: str
) -> Idempotency | None:
    """As :func:`idempotency`, for a body that is text (a CSV file)."""
    if key is None:
        return None
    digest = hashlib.sha256(f"{operation}\n{target}\n{text}".encode()).hexdigest()
    return Idempotency(key, digest)


@dataclass(frozen=True, slots=True)
class Answer:
    """A change's response, as sent and as stored for a retry with the same key: the body
    is the encoded JSON, so a replay is byte-identical."""

    status: int
    body: bytes
    etag: str | None
    replayed: bool = False


async def _once(
    conn: asyncpg.Connection,
    owner_id: str,
    idem: Idempotency | None,
    work: Callable[[], Awaitable[Answer]],
) -> Answer:
    if idem is None:
        return await work()
    if await repository.claim_idempotency_key(
        conn, owner_id, idem.key, idem.fingerprint, IDEMPOTENCY_TTL_SECONDS
    ):
        answer = await work()
        await repository.store_response(
            conn, owner_id, idem.key, status=answer.status, etag=answer.etag, body=answer.body
        )
        return answer
    stored = await repository.stored_response(conn, owner_id, idem.key)
    if stored is None or stored.status is None or stored.body is None:
        # Not reachable through the claim's locking; said plainly if it ever is.
        raise ConflictError("A request with this Idempotency-Key is still in progress.")
    if stored.fingerprint != idem.fingerprint:
        raise IdempotencyKeyReusedError(details={"idempotency_key": idem.key})
    return Answer(stored.status, stored.body, stored.etag, replayed=True)


def _json(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


# --- portfolios -----------------------------------------------------------------------


async def list_portfolios(
    conn: asyncpg.Connection,
    owner_id: str,
    *,
    cursor: str | None,
    limit: int,
    cursor_key: CursorKey,
) -> tuple[list[Portfolio], str | None]:
    after = None
    if cursor:
        position = PORTFOLIOS_CURSOR.decode(cursor_key, cursor)
        after = (position.created_at, position.id)
    items = await repository.list_for_owner(conn, owner_id, after=after, limit=limit + 1)
    next_cursor = None
    if len(items) > limit:
        last = items[limit - 1]
        next_cursor = PORTFOLIOS_CURSOR.encode(
            cursor_key, PortfolioPagePosition(created_at=last.created_at, id=last.id)
        )
    return items[:limit], next_cursor


async def default_portfolio(
    conn: asyncpg.Connection, owner_id: str, *, lock: bool = False
) -> Portfolio:
    """The owner's default portfolio, made on first use: their oldest if they have some,
    else a new empty one."""
    found = await repository.get_default(conn, owner_id, lock=lock)
    if found is not None:
        return found
    await repository.lock_owner(conn, owner_id)
    found = await repository.get_default(conn, owner_id, lock=lock)
    if found is None:
        found = await repository.promote_oldest_to_default(conn, owner_id)
    if found is None:
        found = await repository.insert(
            conn,
            portfolio_id=uuid.uuid4(),
            owner_id=owner_id,
            name=DEFAULT_NAME,
            base_currency="USD",
            is_default=True,
        )
        assert found is not None  # the owner has no portfolio, so the name is free
        await announcements.portfolio_created(conn, found)
    return found


async def portfolio(
    conn: asyncpg.Connection, owner_id: str, portfolio_id: UUID | None, *, lock: bool = False
) -> Portfolio:
    """The owner's portfolio ``portfolio_id`` (their default for None); 404 otherwise."""
    if portfolio_id is None:
        return await default_portfolio(conn, owner_id, lock=lock)
    found = await repository.get(conn, owner_id, portfolio_id, lock=lock)
    if found is None:
        raise PortfolioNotFoundError(details={"portfolio_id": str(portfolio_id)})
    return found


async def create_portfolio(
    conn: asyncpg.Connection, owner_id: str, data: PortfolioCreate, idem: Idempotency | None
) -> Answer:
    async def work() -> Answer:
        created = await repository.insert(
            conn,
            portfolio_id=uuid.uuid4(),
            owner_id=owner_id,
            name=data.name,
            base_currency=data.base_currency,
        )
        if created is None:
            raise PortfolioNameTakenError(
                f"You already have a portfolio named {data.name!r}.", details={"name": data.name}
            )
        if data.cash > 0:
            opening = Entry(
                id=uuid.uuid4(),
                seq=_UNWRITTEN_SEQ,
                kind=Kind.DEPOSIT,
                executed_at=datetime.now(UTC),
                amount=domain.money(data.cash),
                note="opening balance",
            )
            stored = await repository.append(conn, created.id, opening)
            created = await repository.set_balance(conn, created.id, opening.amount)
            await announcements.portfolio_created(conn, created)
            await announcements.entries_written(conn, created, [stored])
        else:
            await announcements.portfolio_created(conn, created)
        return Answer(201, _json(PortfolioOut.of(created)), domain.etag(created.version))

    return await _once(conn, owner_id, idem, work)


def _check_version(found: Portfolio, if_match: str | None) -> None:
    if if_match is None:
        raise PreconditionRequiredError(details={"etag": domain.etag(found.version)})
    accepted = domain.if_match_versions(if_match)
    if accepted is not None and found.version not in accepted:
        raise VersionMismatchError(details={"etag": domain.etag(found.version)})


async def rename_portfolio(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID,
    data: PortfolioUpdate,
    if_match: str | None,
) -> Portfolio:
    found = await portfolio(conn, owner_id, portfolio_id, lock=True)
    _check_version(found, if_match)
    renamed = await repository.rename(conn, found.id, data.name)
    if renamed is None:
        raise PortfolioNameTakenError(
            f"You already have a portfolio named {data.name!r}.", details={"name": data.name}
        )
    return renamed


# --- valuation ------------------------------------------------------------------------


async def _state(
    conn: asyncpg.Connection, found: Portfolio, ledgers: Ledgers
) -> tuple[domain.Ledger, list[Entry] | None]:
    """The ledger state of ``found`` at its version, and the entries if they were read."""
    state = ledgers.states.get(found.id, found.version)
    if state is not None:
        return state, None
    entries = await repository.entries(conn, found.id)
    state = domain.replay(entries)
    # Kept only if no change committed between reading the row and the entries (outside
    # the row lock, READ COMMITTED can see a newer ledger than the row's version).
    if await repository.version_of(conn, found.id) == found.version:
        ledgers.states.put(found.id, found.version, state)
    return state, entries


async def valuation(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    market: MarketQuotes,
    ledgers: Ledgers,
) -> PortfolioValuation:
    """The portfolio with its open positions at market's latest quotes."""
    found = await portfolio(conn, owner_id, portfolio_id)
    ledger, _ = await _state(conn, found, ledgers)
    book = await market.latest(p.ticker for p in ledger.open_positions())
    valued = domain.value(ledger, book.quotes)
    positions = [PositionOut.of(v) for v in valued.positions]
    flags = await repository.open_flags(conn, found.id)
    for position in positions:
        flag = flags.get(position.ticker)
        if flag is not None:
            position.sell_flag = SellFlagOut(
                recommendation_id=flag.recommendation_id,
                run_id=flag.run_id,
                confidence=flag.confidence,
                flagged_at=flag.flagged_at,
            )
    return PortfolioValuation(
        **PortfolioOut.of(found).model_dump(),
        positions=positions,
        closed_positions=[
            ClosedPositionOut.of(p)
            for p in sorted(ledger.positions.values(), key=lambda p: p.ticker)
            if p.quantity == 0
        ],
        market_value=valued.market_value,
        total_value=valued.total_value,
        cost_basis=valued.cost_basis,
        unrealised_pnl=valued.unrealised_pnl,
        realised_pnl=valued.realised_pnl,
        dividends=valued.dividends,
        deposits=ledger.deposits,
        withdrawals=ledger.withdrawals,
        fees=ledger.fees,
        cash_weight=valued.cash_weight,
        sectors=[SectorWeight(sector=s, weight=w) for s, w in valued.sectors.items()],
        prices_as_of=valued.prices_as_of,
        prices_available=book.available,
        unpriced=valued.unpriced,
    )


# --- the ledger -----------------------------------------------------------------------


def _executed_at(value: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if value is None:
        return now
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # documented: a time without a zone is UTC
    if value > now + FUTURE_TOLERANCE:
        raise ValidationFailedError(
            "A transaction cannot be dated in the future.",
            details={"executed_at": value.isoformat()},
        )
    return value


def _entry_of(data: TradeIn | CashIn | DividendIn | AccountFeeIn | SplitIn) -> Entry:
    """The ledger row a request asks for (its cash amount computed by the domain)."""
    common: dict[str, Any] = {
        "id": uuid.uuid4(),
        "seq": _UNWRITTEN_SEQ,
        "executed_at": _executed_at(data.executed_at),
        "note": data.note,
    }
    if isinstance(data, TradeIn):
        kind = Kind(data.kind)
        return Entry(
            kind=kind,
            amount=domain.trade_amount(kind, data.quantity, data.price, data.fee),
            ticker=data.ticker,
            quantity=data.quantity,
            price=data.price,
            fee=data.fee,
            **common,
        )
    if isinstance(data, CashIn):
        sign = 1 if data.kind == "DEPOSIT" else -1
        return Entry(kind=Kind(data.kind), amount=sign * data.amount, **common)
    if isinstance(data, DividendIn):
        return Entry(kind=Kind.DIVIDEND, amount=data.amount, ticker=data.ticker, **common)
    if isinstance(data, AccountFeeIn):
        return Entry(kind=Kind.FEE, amount=-data.amount, ticker=data.ticker, **common)
    return Entry(
        kind=Kind.SPLIT,
        amount=domain.ZERO,
        ticker=data.ticker,
        split_to=data.split_to,
        split_from=data.split_from,
        **common,
    )


async def _append(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    if_match: str | None,
    make: Callable[[list[Entry]], Entry],
    ledgers: Ledgers,
    *,
    needs_entries: bool = False,
) -> Answer:
    found = await portfolio(conn, owner_id, portfolio_id, lock=True)
    _check_version(found, if_match)
    state, entries = await _state(conn, found, ledgers)
    if needs_entries and entries is None:
        entries = await repository.entries(conn, found.id)
    new = make(entries or [])
    try:
        # Appending after the last entry extends the known state; a back-dated entry or a
        # reversal replays the whole ledger.
        ledger = domain.extend(state, new)
        if ledger is None:
            if entries is None:
                entries = await repository.entries(conn, found.id)
            ledger = domain.replay([*entries, new])
    except LedgerRejected as exc:
        raise LedgerRefusedError(exc.reason, exc.message, dict(exc.details)) from None
    stored = await repository.append(conn, found.id, new)
    updated = await repository.set_balance(conn, found.id, ledger.cash)
    await announcements.entries_written(conn, updated, [stored])
    # The state kept is built from the row as stored (its decimals at the column's
    # scale), so it is exactly what a replay from the database would give.
    kept = domain.extend(state, stored) or domain.replay([*(entries or []), stored])
    ledgers.keep_after_commit(found.id, updated.version, kept)
    body = Recorded(transaction=TransactionOut.of(stored), portfolio=PortfolioOut.of(updated))
    return Answer(201, _json(body), domain.etag(updated.version))


async def record_transaction(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    data: TransactionCreate,
    if_match: str | None,
    idem: Idempotency | None,
    ledgers: Ledgers,
) -> Answer:
    async def work() -> Answer:
        return await _append(
            conn, owner_id, portfolio_id, if_match, lambda _: _entry_of(data), ledgers
        )

    return await _once(conn, owner_id, idem, work)


async def buy(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    data: PositionCreate,
    if_match: str | None,
    idem: Idempotency | None,
    market: MarketQuotes,
    ledgers: Ledgers,
) -> Answer:
    """Add to a position: a BUY at the given price, or at market's latest quote."""

    async def work() -> Answer:
        unit_price = data.price
        if unit_price is None:
            # Asked before the portfolio is locked: a slow market holds no one else up.
            book = await market.latest([data.ticker])
            if not book.available:
                raise MarketUnavailableError(details={"reason": book.problem})
            quote = book.quotes.get(data.ticker)
            if quote is None:
                raise UnknownTickerError(
                    f"Market has no price for {data.ticker}; give a price to record it anyway.",
                    details={"ticker": data.ticker},
                )
            unit_price = quote.price
        trade = TradeIn(
            kind="BUY",
            ticker=data.ticker,
            quantity=data.quantity,
            price=unit_price,
            fee=data.fee,
            executed_at=data.executed_at,
            note=data.note,
        )
        return await _append(
            conn, owner_id, portfolio_id, if_match, lambda _: _entry_of(trade), ledgers
        )

    return await _once(conn, owner_id, idem, work)


async def reverse_transaction(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    transaction_id: UUID,
    data: ReversalCreate,
    if_match: str | None,
    idem: Idempotency | None,
    ledgers: Ledgers,
) -> Answer:
    """Cancel a ledger entry with a reversing entry (refused if what follows it in the
    ledger depends on it: reversing a BUY whose shares were sold is an oversell)."""

    def make(entries: list[Entry]) -> Entry:
        target = next((e for e in entries if e.id == transaction_id), None)
        if target is None:
            raise TransactionNotFoundError(details={"transaction_id": str(transaction_id)})
        try:
            domain.check_reversible(entries, target)
        except LedgerRejected as exc:
            raise LedgerRefusedError(exc.reason, exc.message, dict(exc.details)) from None
        return domain.reversal_of(target, entry_id=uuid.uuid4(), seq=_UNWRITTEN_SEQ, note=data.note)

    async def work() -> Answer:
        return await _append(
            conn, owner_id, portfolio_id, if_match, make, ledgers, needs_entries=True
        )

    return await _once(conn, owner_id, idem, work)


async def list_transactions(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    *,
    cursor: str | None,
    limit: int,
    cursor_key: CursorKey,
) -> tuple[list[Entry], str | None]:
    """The ledger, newest first."""
    before = None
    if cursor:  # the input first: a bad cursor is a 422 whichever portfolio it names
        position = TRANSACTIONS_CURSOR.decode(cursor_key, cursor)
        before = (position.executed_at, position.seq)
    found = await portfolio(conn, owner_id, portfolio_id)
    items = await repository.page_of_entries(conn, found.id, before=before, limit=limit + 1)
    next_cursor = None
    if len(items) > limit:
        last = items[limit - 1]
        next_cursor = TRANSACTIONS_CURSOR.encode(
            cursor_key, TransactionPagePosition(executed_at=last.executed_at, seq=last.seq)
        )
    return items[:limit], next_cursor


# --- performance ----------------------------------------------------------------------

NO_INDEX = "market did not answer for its index: no benchmark figures"
_RATIO = Decimal("1E-8")


def _ratio(value: float | None) -> Decimal | None:
    if value is None or not math.isfinite(value):
        return None
    return Decimal(repr(value)).quantize(_RATIO, rounding=ROUND_HALF_EVEN)


async def performance(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    market: MarketQuotes,
    *,
    today: date | None = None,
) -> Performance:
    """TWR and MWR over the standard periods, volatility, drawdown and the daily value
    series, valued at market's unadjusted daily closes (see domain.performance)."""
    found = await portfolio(conn, owner_id, portfolio_id)
    entries = await repository.entries(conn, found.id)
    end = today or datetime.now(UTC).date()
    live = domain.active(entries)
    held = sorted({e.ticker for e in live if e.kind is Kind.BUY and e.ticker})
    first = min((perf.entry_day(e) for e in live), default=end)
    # The index from a week before the first day: the first day's benchmark return
    # starts from the level before it.
    book, benchmark = await asyncio.gather(
        market.closes(held, first, end), market.index(first - timedelta(days=7), end)
    )
    series = perf.value_series(entries, book.closes, end)
    returns = perf.daily_returns(series)
    index = perf.twr_index(returns)
    against = (
        perf.benchmark_returns(series, benchmark.levels) if benchmark.levels is not None else None
    )
    periods = [perf.period_return(series, p, against) for p in perf.Period] if series else []
    return Performance(
        portfolio_id=found.id,
        base_currency=found.base_currency,
        as_of=end,
        periods=[
            PeriodPerformance(
                period=p.period.value,
                start=p.start,
                end=p.end,
                available=p.available,
                note=p.note,
                start_value=p.start_value,
                end_value=p.end_value,
                net_flows=p.net_flows,
                twr=ReturnFigure(
                    method=TWR_METHOD, value=_ratio(p.twr), annualised=_ratio(p.twr_annualised)
                ),
                mwr=ReturnFigure(  # XIRR is an annual rate by definition
                    method=MWR_METHOD, value=_ratio(p.mwr), over_period=_ratio(p.mwr_period)
                ),
                benchmark_return=ReturnFigure(method=BENCHMARK_METHOD, value=_ratio(p.benchmark)),
                excess_return=ReturnFigure(method=EXCESS_METHOD, value=_ratio(p.excess)),
            )
            for p in periods
        ],
        volatility=ReturnFigure(method=VOLATILITY_METHOD, value=_ratio(perf.volatility(returns))),
        max_drawdown=ReturnFigure(method=DRAWDOWN_METHOD, value=_ratio(perf.max_drawdown(returns))),
        benchmark=BENCHMARK,
        benchmark_note=None if benchmark.available else NO_INDEX,
        beta=ReturnFigure(
            method=BETA_METHOD,
            value=_ratio(perf.beta(returns, against) if against is not None else None),
        ),
        prices_available=book.available,
        missing_history=sorted(set(book.missing)),
        series=[
            SeriesPoint(
                date=point.day,
                value=point.value,
                cash=point.cash,
                net_flow=point.flow,
                twr_index=_ratio(growth) or Decimal(0),
            )
            for point, growth in zip(series, index, strict=True)
        ],
    )


# --- rebalancing ----------------------------------------------------------------------


async def rebalance(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    data: RebalanceRequest,
    if_match: str | None,
    idem: Idempotency | None,
    market: MarketQuotes,
    ledgers: Ledgers,
    sources: risk.Sources,
) -> Answer:
    """A rebalance proposal at market's latest quotes, with the x-ray before and after;
    with ``apply``, its trades are recorded too -- all of them in this one transaction,
    or none."""
    if not data.apply:
        return await _rebalance(conn, owner_id, portfolio_id, data, None, market, ledgers, sources)
    if idem is None:
        raise IdempotencyKeyRequiredError()

    async def work() -> Answer:
        return await _rebalance(
            conn, owner_id, portfolio_id, data, if_match, market, ledgers, sources
        )

    return await _once(conn, owner_id, idem, work)


async def _rebalance(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    data: RebalanceRequest,
    if_match: str | None,
    market: MarketQuotes,
    ledgers: Ledgers,
    sources: risk.Sources,
) -> Answer:
    found = await portfolio(conn, owner_id, portfolio_id, lock=data.apply)
    if data.apply:
        _check_version(found, if_match)
    ledger, entries = await _state(conn, found, ledgers)
    c = data.constraints
    excluded = frozenset(c.exclude)
    positions = ledger.open_positions()
    chosen = risk.universe(data.target, [p.ticker for p in positions], excluded)
    wanted = sorted({p.ticker for p in positions} | set(chosen))
    # Quotes, daily history, the index and the latest calls at once: the targets and the
    # x-ray before and after need them.
    days = max(sources.settings.history_days, getattr(data.target, "history_days", 0))
    book, context = await asyncio.gather(
        market.latest(wanted),
        risk.gather_context(
            market, sources.recommendations, wanted, days=days, today=datetime.now(UTC).date()
        ),
    )
    targets, method = await risk.resolve_targets(data.target, chosen, context)
    if not book.available:
        raise MarketUnavailableError(details={"reason": book.problem})
    unpriced = [t for t in wanted if t not in book.quotes]
    if unpriced:
        raise UnknownTickerError(
            "Market has no price for some tickers, so the portfolio cannot be valued.",
            details={"tickers": unpriced},
        )
    prices = {t: q.price for t, q in book.quotes.items()}
    try:
        proposal = rebalancing.propose(
            [rebalancing.Holding(p.ticker, p.quantity, prices[p.ticker]) for p in positions],
            ledger.cash,
            prices,
            targets,
            rebalancing.Constraints(
                cash_buffer=c.cash_buffer,
                min_trade_value=c.min_trade_value,
                fractional=c.fractional,
                drift_band=c.drift_band,
                max_turnover=c.max_turnover,
                exclude=excluded,
                fee_per_trade=c.fee_per_trade,
                cost_bps=c.cost_bps,
            ),
        )
    except rebalancing.RebalanceRejected as exc:
        raise RebalanceRefusedError(exc.reason, exc.message, dict(exc.details)) from None
    limits = sources.settings.limits_of(data.xray_limits)
    held = {p.ticker: p.quantity for p in positions}
    before = risk.holdings_at(held, book.quotes, ledger.cash)
    after_trades = risk.holdings_at(
        risk.quantities_after(held, proposal.trades), book.quotes, proposal.cash_after
    )
    xray_before, _ = risk.xray_of(before, limits, context, sources.settings.history_days)
    xray_after, _ = risk.xray_of(after_trades, limits, context, sources.settings.history_days)
    written: list[Entry] = []
    version = found.version
    if data.apply and proposal.trades:
        now = datetime.now(UTC)
        new = [
            Entry(
                id=uuid.uuid4(),
                seq=_UNWRITTEN_SEQ + i,
                kind=Kind(t.side),
                executed_at=now,
                amount=domain.trade_amount(Kind(t.side), t.quantity, t.price, t.fee),
                ticker=t.ticker,
                quantity=t.quantity,
                price=t.price,
                fee=t.fee,
                note="rebalance",
            )
            for i, t in enumerate(proposal.trades)
        ]
        try:
            after: domain.Ledger | None = ledger
            for entry in new:  # at now: after every entry, so each extends the state
                after = domain.extend(after, entry) if after is not None else None
            if after is None:
                everything = entries or await repository.entries(conn, found.id)
                after = domain.replay([*everything, *new])
        except LedgerRejected as exc:
            raise LedgerRefusedError(exc.reason, exc.message, dict(exc.details)) from None
        written = [await repository.append(conn, found.id, entry) for entry in new]
        applied = await repository.set_balance(conn, found.id, after.cash)
        await announcements.entries_written(conn, applied, written)
        version = applied.version
        kept: domain.Ledger | None = ledger
        for entry in written:
            kept = domain.extend(kept, entry) if kept is not None else None
        if kept is not None:  # else the next request reads the ledger again
            ledgers.keep_after_commit(found.id, version, kept)
    body = RebalanceProposal(
        portfolio_id=found.id,
        version=version,
        applied=data.apply,
        trades=[
            ProposedTrade(
                ticker=t.ticker,
                side=t.side,
                quantity=t.quantity,
                price=t.price,
                value=t.value,
                fee=t.fee,
            )
            for t in proposal.trades
        ],
        lines=[
            RebalanceLine(
                ticker=line.ticker,
                target=line.target,
                weight_before=line.weight_before,
                weight_after=line.weight_after,
                quantity_before=line.quantity_before,
                quantity_after=line.quantity_after,
                tolerance=line.tolerance,
            )
            for line in proposal.lines
        ],
        total_value=proposal.total_value,
        cash_before=proposal.cash_before,
        cash_after=proposal.cash_after,
        cash_weight_after=proposal.cash_weight_after,
        turnover=proposal.turnover,
        estimated_cost=proposal.estimated_cost,
        scaled_targets=proposal.scaled_targets,
        notes=proposal.notes,
        prices_as_of=min((q.as_of for q in book.quotes.values()), default=None),
        transactions=[TransactionOut.of(e) for e in written],
        target_method=method,
        xray_before=risk.xray_out(xray_before, limits, before, context.calls),
        xray_after=risk.xray_out(xray_after, limits, after_trades, context.calls),
    )
    return Answer(200, _json(body), domain.etag(version))


# --- CSV ------------------------------------------------------------------------------


async def export_transactions(
    conn: asyncpg.Connection, owner_id: str, portfolio_id: UUID | None
) -> str:
    """The whole ledger as CSV (the documented layout, which the import reads back)."""
    found = await portfolio(conn, owner_id, portfolio_id)
    return ledger_csv.export(await repository.entries(conn, found.id))


async def import_transactions(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    text: str,
    *,
    dry_run: bool,
    if_match: str | None,
    idem: Idempotency | None,
    ledgers: Ledgers,
) -> Answer:
    """Import a CSV of transactions: rows with errors and duplicates (of the ledger's live
    entries or of earlier rows) are reported and left out; the rest go in together, in
    one transaction, if the ledger accepts them all -- else nothing does, and the answer
    names the first row it refuses. ``dry_run`` reports without writing."""

    async def work() -> Answer:
        found = await portfolio(conn, owner_id, portfolio_id, lock=not dry_run)
        if not dry_run:
            _check_version(found, if_match)
        entries = await repository.entries(conn, found.id)
        try:
            rows = ledger_csv.parse(
                text, now=datetime.now(UTC) + FUTURE_TOLERANCE, first_seq=_UNWRITTEN_SEQ
            )
        except ledger_csv.CsvRejected as exc:
            raise InvalidImportError(exc.message) from None
        seen = {ledger_csv.fingerprint(e) for e in domain.active(entries)}
        report: list[ImportedRow] = []
        new: list[Entry] = []
        line_of: dict[UUID, int] = {}
        for row in rows:
            if row.entry is None:
                status = "error" if row.error else "skipped"
                report.append(
                    ImportedRow(
                        line=row.line,
                        status=status,
                        message=row.error or row.skipped,
                        transaction_id=None,
                    )
                )
                continue
            key = ledger_csv.fingerprint(row.entry)
            if key in seen:
                report.append(
                    ImportedRow(
                        line=row.line,
                        status="duplicate",
                        message="already in the ledger (or earlier in the file)",
                        transaction_id=None,
                    )
                )
                continue
            seen.add(key)
            new.append(row.entry)
            line_of[row.entry.id] = row.line
            report.append(
                ImportedRow(
                    line=row.line, status="imported", message=None, transaction_id=row.entry.id
                )
            )
        try:
            domain.replay([*entries, *new])
        except LedgerRejected as exc:
            line = line_of.get(UUID(str(exc.details.get("entry_id"))))
            where = f"Line {line}: " if line else ""
            raise LedgerRefusedError(
                exc.reason,
                f"{where}{exc.message} Nothing was imported.",
                {**exc.details, "line": line},
            ) from None
        updated = found
        if not dry_run and new:
            stored = [await repository.append(conn, found.id, entry) for entry in new]
            after = domain.replay([*entries, *stored])
            updated = await repository.set_balance(conn, found.id, after.cash)
            await announcements.entries_written(conn, updated, stored)
            ledgers.keep_after_commit(found.id, updated.version, after)
        counts = {s: sum(r.status == s for r in report) for s in ("imported", "duplicate")}
        body = ImportReport(
            dry_run=dry_run,
            imported=counts["imported"],
            duplicates=counts["duplicate"],
            skipped=sum(r.status == "skipped" for r in report),
            errors=sum(r.status == "error" for r in report),
            rows=report,
            portfolio=PortfolioOut.of(updated),
        )
        return Answer(200, _json(body), domain.etag(updated.version))

    if dry_run:
        return await work()
    return await _once(conn, owner_id, idem, work)


# --- risk x-ray and impact preview --------------------------------------------------------


async def xray(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    limits: Limits,
    market: MarketQuotes,
    ledgers: Ledgers,
    sources: risk.Sources,
) -> PortfolioXRay:
    """The risk x-ray of the holdings at market's latest quotes. Each other context may be
    away: without quotes the positions are unpriced, without history there are no risk
    figures, without recommendations no SELL list -- each part says so, none fails."""
    found = await portfolio(conn, owner_id, portfolio_id)
    ledger, _ = await _state(conn, found, ledgers)
    held = {p.ticker: p.quantity for p in ledger.open_positions()}
    days = sources.settings.history_days
    book, context = await asyncio.gather(
        market.latest(held),
        risk.gather_context(
            market, sources.recommendations, held, days=days, today=datetime.now(UTC).date()
        ),
    )
    holdings = risk.holdings_at(held, book.quotes, ledger.cash)
    figures, _ = risk.xray_of(holdings, limits, context, days)
    out = risk.xray_out(figures, limits, holdings, context.calls)
    return PortfolioXRay(
        **dict(out),
        portfolio_id=found.id,
        version=found.version,
        prices_available=book.available,
        prices_as_of=min((book.quotes[t].as_of for t in holdings.values), default=None),
        unpriced=sorted(t for t in held if t not in book.quotes),
    )


@dataclass(frozen=True, slots=True)
class ImpactAsk:
    """Which call to preview (a ticker's latest, or a call by id) and how to follow it."""

    ticker: str | None
    recommendation_id: UUID | None
    step: Decimal
    fractional: bool
    limits: Limits


async def impact(
    conn: asyncpg.Connection,
    owner_id: str,
    portfolio_id: UUID | None,
    ask: ImpactAsk,
    market: MarketQuotes,
    ledgers: Ledgers,
    sources: risk.Sources,
) -> ImpactPreview:
    """What following one latest live call would do to the weights and the x-ray
    (rule: :data:`IMPACT_RULE`). Reads only: nothing is written."""
    found = await portfolio(conn, owner_id, portfolio_id)
    ledger, _ = await _state(conn, found, ledgers)
    recommendations = sources.recommendations
    if ask.recommendation_id is not None:
        calls, call = await recommendations.by_id(ask.recommendation_id)
    else:
        assert ask.ticker is not None
        calls = await recommendations.latest([ask.ticker])
        call = calls.calls.get(ask.ticker)
    if not calls.available:
        raise RecommendationsUnavailableError(details={"reason": calls.problem})
    if calls.run_id is None:
        raise NoRecommendationsError()
    if call is None:
        raise RecommendationNotFoundError(
            details={"ticker": ask.ticker, "recommendation_id": ask.recommendation_id}
        )
    held = {p.ticker: p.quantity for p in ledger.open_positions()}
    wanted = sorted(set(held) | {call.ticker})
    book, context = await asyncio.gather(
        market.latest(wanted),
        risk.gather_context(
            market,
            recommendations,
            wanted,
            days=sources.settings.history_days,
            today=datetime.now(UTC).date(),
        ),
    )
    if not book.available:
        raise MarketUnavailableError(details={"reason": book.problem})
    unpriced = [t for t in wanted if t not in book.quotes]
    if unpriced:
        raise UnknownTickerError(
            "Market has no price for some tickers, so the portfolio cannot be valued.",
            details={"tickers": unpriced},
        )
    prices = {t: q.price for t, q in book.quotes.items()}
    before = risk.holdings_at(held, book.quotes, ledger.cash)
    total = before.total
    weight = before.values.get(call.ticker, domain.ZERO) / total if total > 0 else domain.ZERO
    target = targets.impact_target(call.action, weight, ask.step, ask.limits.max_position_weight)
    notes: list[str] = []
    trades: list[rebalancing.Trade] = []
    cash_after = ledger.cash
    if target is None:
        notes.append("The call is HOLD: following it trades nothing.")
    elif call.action == "SELL" and call.ticker not in held:
        notes.append("The call is SELL and the portfolio does not hold it: nothing to sell.")
    elif call.action == "BUY" and target <= weight:
        notes.append("The position is at or above the position limit: nothing to buy.")
    else:
        try:
            proposal = rebalancing.propose(
                [rebalancing.Holding(t, q, prices[t]) for t, q in held.items()],
                ledger.cash,
                prices,
                {call.ticker: target},
                rebalancing.Constraints(
                    fractional=ask.fractional, exclude=frozenset(held) - {call.ticker}
                ),
            )
        except rebalancing.RebalanceRejected as exc:
            raise RebalanceRefusedError(exc.reason, exc.message, dict(exc.details)) from None
        trades, cash_after = proposal.trades, proposal.cash_after
        notes += proposal.notes
        if call.action == "BUY" and not trades:
            notes.append("Cash does not cover a single share: nothing to buy.")
    after = risk.holdings_at(risk.quantities_after(held, trades), book.quotes, cash_after)
    xray_before, _ = risk.xray_of(before, ask.limits, context, sources.settings.history_days)
    xray_after, _ = risk.xray_of(after, ask.limits, context, sources.settings.history_days)
    return ImpactPreview(
        portfolio_id=found.id,
        version=found.version,
        recommendation=FollowedCall(
            id=call.id,
            ticker=call.ticker,
            action=call.action,
            confidence=call.confidence,
            run_id=calls.run_id,
            as_of=calls.as_of,
        ),
        rule=IMPACT_RULE,
        trades=[
            ProposedTrade(
                ticker=t.ticker,
                side=t.side,
                quantity=t.quantity,
                price=t.price,
                value=t.value,
                fee=t.fee,
            )
            for t in trades
        ],
        weight_before=xray_before.weights.get(call.ticker, domain.ZERO),
        weight_after=xray_after.weights.get(call.ticker, domain.ZERO),
        cash_before=ledger.cash,
        cash_after=cash_after,
        notes=notes,
        prices_as_of=min((q.as_of for q in book.quotes.values()), default=None),
        xray_before=risk.xray_out(xray_before, ask.limits, before, context.calls),
        xray_after=risk.xray_out(xray_after, ask.limits, after, context.calls),
    )

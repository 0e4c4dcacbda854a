"""Loading data: the simulated universe (bulk), and the derived statistics and index that
every end-of-day load refreshes.

The universe load runs once per database: it takes a session-level advisory lock (one
loader among replicas), records its progress in ``universe_loads`` (the service reports it
in its logs and on ``/api/v1/market/status``), generates the universe in chunks in a worker
thread while the previous chunk is copied, and loads bars without the primary key, which
is built at the end. A load that died half-way (state ``loading`` and no lock holder) is
started again from nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import numpy as np

from services.market.domain import Security, calendar
from services.market.domain import adjustment as adj
from services.market.domain import simulator as sim
from services.market.domain import statistics as st
from services.market.repository import actions as actions_repo
from services.market.repository import bars as bars_repo
from services.market.repository import loads, quotes, securities, stats
from services.market.service import corporate_actions, fundamentals

logger = logging.getLogger("services.market.loading")

Report = Callable[[str], None]


@dataclass(frozen=True)
class UniverseLoadResult:
    loaded: bool  # False when the universe was already there (or another loader ran it)
    securities: int
    rows: int
    seconds: float


def universe_spec(
    size: int, years: int, seed: int, now: datetime | None = None
) -> sim.UniverseSpec:
    """The universe ending with the last session that has closed before ``now``."""
    end = calendar.last_closed_session(now or datetime.now(UTC))
    start = date(end.year - years, end.month, min(end.day, 28)) + timedelta(days=1)
    return sim.UniverseSpec(size=size, sessions=calendar.sessions(start, end), seed=seed)


def simulated_securities(universe: sim.Universe) -> list[Security]:
    """The securities rows of a simulated universe, with their listing dates."""
    listed, delisted = sim.listing_dates(universe)
    return [
        Security(
            ticker=s.ticker,
            name=s.name,
            exchange=s.exchange,
            sector=s.sector,
            industry=s.industry,
            currency="USD",
            status="delisted" if gone is not None else "listed",
            shares_outstanding=None,
            data_source=sim.DATA_SOURCE,
            listed_on=on,
            delisted_on=gone,
        )
        for s, on, gone in zip(universe.securities, listed, delisted, strict=True)
    ]


async def universe_present(conn: asyncpg.Connection) -> bool:
    return await securities.count_securities(conn) > 0


async def load_universe(
    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (the universe load: start-up work)
    spec: sim.UniverseSpec,
    *,
    report: Report | None = None,
    chunk_size: int = 250,
    claimed: asyncio.Event | None = None,
) -> UniverseLoadResult:
    """:func:`load_universe_on` with a connection of ``pool``."""
    try:
        async with pool.acquire() as conn:  # lint-skip: request-takes-pool (start-up work)
            return await load_universe_on(
                conn, spec, report=report, chunk_size=chunk_size, claimed=claimed
            )
    finally:
        if claimed is not None:
            claimed.set()


async def load_universe_on(
    conn: asyncpg.Connection,
    spec: sim.UniverseSpec,
    *,
    report: Report | None = None,
    chunk_size: int = 250,
    claimed: asyncio.Event | None = None,
) -> UniverseLoadResult:
    """Generate and load ``spec`` unless the database already has a complete universe.

    ``claimed`` is set as soon as this call knows whether it loads (the ledger row is
    written then), so a caller can wait for that before reporting the service ready.
    """
    say = report or logger.info
    started = time.perf_counter()
    if not await loads.try_lock(conn):
        say("another process is loading the universe")
        return UniverseLoadResult(False, 0, 0, 0.0)
    try:
        previous = await loads.latest(conn)
        if await universe_present(conn) and (previous is None or previous.state == "complete"):
            return UniverseLoadResult(False, 0, 0, 0.0)
        if previous is not None and previous.state != "complete":
            say(f"an earlier universe load stopped at {previous.phase}; starting again")
        await loads.reset_market_data(conn)
        load_id = await loads.start(
            conn, securities=spec.size, sessions=spec.days, rows_total=0, seed=spec.seed
        )
        if claimed is not None:
            claimed.set()
        rows = await _load(conn, load_id, spec, say, chunk_size)
    finally:
        await loads.unlock(conn)
    seconds = time.perf_counter() - started
    say(f"universe loaded: {spec.size:,} securities, {rows:,} daily bars in {seconds:.1f}s")
    return UniverseLoadResult(True, spec.size, rows, seconds)


async def _load(
    conn: asyncpg.Connection, load_id: int, spec: sim.UniverseSpec, say: Report, chunk_size: int
) -> int:
    try:
        universe = await asyncio.to_thread(sim.build_universe, spec)
        total = sim.expected_rows(universe)
        await loads.set_total(conn, load_id, total)
        say(
            f"generating and loading {spec.size:,} simulated securities x {spec.days:,} sessions"
            f" ({total:,} daily bars)"
        )
        ids = await securities.insert_securities(conn, simulated_securities(universe))
        id_of = np.array([ids[s.ticker] for s in universe.securities], dtype=np.int32)
        ticker_of = {security_id: ticker for ticker, security_id in ids.items()}
        await bars_repo.ensure_partitions(conn, bars_repo.years_of(spec.sessions))
        await bars_repo.drop_primary_key(conn)
        factors = sim.factor_paths(spec)

        def generate(k: int) -> tuple[bars_repo.EncodedPartitions, sim.SimulatedBars]:
            # Simulate and encode in a worker thread while the previous chunk is copied.
            chunk = sim.simulate_bars(universe, factors, k, min(k + chunk_size, spec.size))
            arrays = bars_repo.BarArrays(
                id_of[chunk.security],
                spec.sessions[chunk.day],
                chunk.open,
                chunk.high,
                chunk.low,
                chunk.close,
                chunk.volume,
            )
            return bars_repo.encode_by_year(arrays), chunk

        loaded = 0
        action_rows: list[tuple[int, date, str, float, float | None, str]] = []
        shares_ids: list[int] = []
        shares: list[int] = []
        starts = list(range(0, spec.size, chunk_size))
        pending = asyncio.create_task(asyncio.to_thread(generate, starts[0]))
        last_report = 0.0
        for n, k in enumerate(starts):
            encoded, chunk = await pending
            if n + 1 < len(starts):
                pending = asyncio.create_task(asyncio.to_thread(generate, starts[n + 1]))
            loaded += await bars_repo.copy_encoded_partitions(conn, encoded)
            for i, t, kind, value, factor in chunk.actions:
                day = calendar.to_date(spec.sessions[t])
                action_rows.append((int(id_of[i]), day, kind, value, factor, sim.DATA_SOURCE))
            shares_ids.extend(int(x) for x in id_of[k : k + len(chunk.shares_outstanding)])
            shares.extend(int(x) for x in chunk.shares_outstanding)
            await loads.progress(conn, load_id, rows_loaded=loaded, phase="bars")
            if time.monotonic() - last_report > 5 or n + 1 == len(starts):
                last_report = time.monotonic()
                say(f"loading daily bars: {loaded:,}/{total:,} ({100 * loaded / total:.0f}%)")
        say("building the bars index")
        await loads.progress(conn, load_id, rows_loaded=loaded, phase="indexing")
        await bars_repo.add_primary_key(conn)
        await bars_repo.analyze(conn)
        async with conn.transaction():  # the actions and their announcement: both or neither
            await actions_repo.copy_actions(conn, action_rows)
            await corporate_actions.announce(
                conn,
                (
                    (ticker_of[sid], day, kind, value, source)
                    for sid, day, kind, value, _, source in action_rows
                ),
            )
        await securities.set_shares_outstanding(conn, shares_ids, shares)
        say("computing quotes, statistics and the universe index")
        await loads.progress(conn, load_id, rows_loaded=loaded, phase="statistics")
        last_session = calendar.to_date(spec.sessions[-1])
        await quotes.quotes_from_bars(conn, last_session)
        await quotes.rebuild_snapshot(conn)
        await refresh_derived(conn, since=calendar.to_date(spec.sessions[0]), until=last_session)
        # Simulated fundamentals, consistent with the simulated prices (data_source simulated).
        await fundamentals.simulate(conn, last_session, spec.seed)
        await bars_repo.analyze_small_tables(conn)
        await loads.finish(conn, load_id)
        return loaded
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            await loads.finish(conn, load_id, error=f"{type(exc).__name__}: {exc}"[:500])
        raise


async def ensure_derived(conn: asyncpg.Connection) -> None:
    """Recompute the statistics and the whole index when bars exist but the index does not
    (a migration emptied it); a no-op otherwise."""
    if await stats.latest_index_day(conn) is not None:
        return
    # One replica rebuilds (the loader's lock); the others start without waiting.
    if not await loads.try_lock(conn):
        return
    try:
        if await stats.latest_index_day(conn) is not None:
            return
        first = await bars_repo.first_day(conn)
        if first is None:
            return
        logger.info("rebuilding the universe index and statistics from the bars")
        started = time.perf_counter()
        async with conn.transaction():
            await refresh_derived(conn, since=first)
        logger.info("universe index and statistics rebuilt in %.1fs", time.perf_counter() - started)
    finally:
        await loads.unlock(conn)


async def refresh_derived(
    conn: asyncpg.Connection, *, since: date, until: date | None = None, chunk_size: int = 500
) -> date | None:
    """Recompute dividend price factors, every security's statistics (as of the last bar:
    ``until`` or the last indexed session, whichever is later) and the universe index
    from ``since``. Returns the as-of day (None without bars). Runs in ``conn``'s
    transaction, one refresh at a time across the service's replicas (concurrent imports
    queue here)."""
    await loads.lock_derived(conn)
    await _refresh_dividend_factors(conn)
    known = [d for d in (until, await stats.latest_index_day(conn)) if d is not None]
    as_of = max(known) if known else await bars_repo.last_day(conn)
    if as_of is None:
        return None
    ids = sorted((await securities.security_ids(conn)).values())
    sector_of = await stats.sector_of(conn)
    window_start = as_of - timedelta(days=400)
    previous = await stats.index_level_before(conn, since)
    bars_from = previous[0] if previous else since
    sessions = calendar.sessions(bars_from, as_of)
    if len(sessions) == 0:
        return as_of
    shares = await stats.shares_by_security(conn)
    # Every action after the first bar read: the index's weights are restated for every
    # later split (market value in today's shares), its total return needs the dividends.
    actions = await actions_repo.actions_after(
        conn, min(window_start, bars_from) - timedelta(days=1)
    )

    all_stats: list[st.SecurityStats] = []
    contribution = st.IndexContribution.zeros(len(sessions))
    for k in range(0, len(ids), chunk_size):
        chunk_ids = ids[k : k + chunk_size]
        window = await bars_repo.bars_for(conn, chunk_ids, min(window_start, bars_from), as_of)

        def compute(
            window: bars_repo.BarArrays = window,
        ) -> tuple[list[st.SecurityStats], st.IndexContribution]:
            found: list[st.SecurityStats] = []
            for security_id, rows in st.group_slices(window.security_id):
                days = window.day[rows]
                recent = days >= np.datetime64(window_start, "D")
                if not recent.any() or days[-1] != np.datetime64(as_of, "D"):
                    continue  # delisted, or no bar on the last day: no live statistics
                item = st.security_stats(
                    security_id,
                    days[recent],
                    window.high[rows][recent],
                    window.low[rows][recent],
                    window.close[rows][recent],
                    window.volume[rows][recent],
                    actions.get(security_id, []),
                )
                if item is not None:
                    found.append(item)
            in_index = window.day >= np.datetime64(bars_from, "D")
            part = st.index_contribution(
                sessions,
                window.security_id[in_index],
                window.day[in_index],
                window.close[in_index],
                shares,
                actions,
            )
            return found, part

        found, part = await asyncio.to_thread(compute)
        all_stats.extend(found)
        contribution = contribution + part

    returns = np.array([s.return_1y if s.return_1y is not None else np.nan for s in all_stats])
    rs_universe = st.percentile_ranks(returns)
    rs_sector = np.full(len(all_stats), np.nan)
    sectors = np.array([sector_of.get(s.security_id, "") for s in all_stats])
    for sector in set(sectors.tolist()):
        members = sectors == sector
        rs_sector[members] = st.percentile_ranks(returns[members])
    await stats.write_stats(
        conn,
        all_stats,
        [None if np.isnan(x) else float(x) for x in rs_universe],
        [None if np.isnan(x) else float(x) for x in rs_sector],
    )
    levels, total_levels, counts = st.chain_index(
        contribution,
        previous[1] if previous else st.INDEX_BASE,
        previous[2] if previous else st.INDEX_BASE,
    )
    rows = [
        (calendar.to_date(day), float(level), float(total), int(n))
        for day, level, total, n in zip(sessions, levels, total_levels, counts, strict=True)
    ]
    if previous is not None:
        rows = rows[1:]  # the first session is the one already stored
    await stats.write_index(conn, rows, since=rows[0][0] if rows else as_of)
    return as_of


async def _refresh_dividend_factors(conn: asyncpg.Connection) -> None:
    pending = await actions_repo.pending_dividends(conn)
    updates = []
    for security_id, ex_date, amount, previous_close in pending:
        if previous_close is None:
            continue
        try:
            factor = adj.dividend_factor(amount, previous_close)
        except ValueError:
            logger.warning(
                "dividend of %s on %s for security %s is not below the previous close; ignored",
                amount,
                ex_date,
                security_id,
            )
            continue
        updates.append((security_id, ex_date, "dividend", factor))
    await actions_repo.set_price_factors(conn, updates)

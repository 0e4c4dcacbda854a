"""The loaded simulated universe looks like a market: every bar, every share count, every
corporate action of the whole universe checked against the calibration in
``docs/market.md`` ("The simulator's calibration"), after a load as in production.

``check_plausibility`` is also what ``bench/market/figures.py --plausibility`` runs on the
full universe (6,000 securities x 10 years).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np
import pandas as pd

from services.market.domain import simulator as sim
from services.market.service import stocks
from services.market.tests import reference as ref

# The calibrated ranges (docs/market.md): per security, per bar, per universe.
MAX_CAP = 5e12  # the largest US companies are $3-4.5T
TOTAL_CAP_PER_6000 = (40e12, 80e12)  # the US market: $46T (2023) to $68T (2025)
MEDIAN_TURNOVER = (0.002, 0.012)  # a day's volume / shares outstanding
P99_TURNOVER = (0.015, 0.10)
MAX_TURNOVER = 0.5


def turnover(m: ref.MarketFrames) -> pd.DataFrame:
    """Each bar's volume in today's shares (split-adjusted) over today's shares outstanding."""
    volume = m.volumes.astype(float).copy()
    for row in m.splits.itertuples():
        before = volume.index < row.ex_date
        volume.loc[before, row.security_id] = volume.loc[before, row.security_id] * row.ratio
    return volume / m.securities["shares"].reindex(volume.columns)


async def check_plausibility(
    conn: asyncpg.Connection, pool: asyncpg.Pool, frames: ref.MarketFrames | None = None
) -> dict[str, Any]:
    """Every check over the whole universe in ``conn``'s database; returns the figures."""
    m = frames if frames is not None else await ref.read_frames(conn)
    row = await conn.fetchrow(
        "SELECT count(*),"
        " count(*) FILTER (WHERE high < greatest(open, close)),"
        " count(*) FILTER (WHERE low > least(open, close)),"
        " count(*) FILTER (WHERE low <= 0),"
        " count(*) FILTER (WHERE volume <= 0)"
        " FROM market.daily_bars"
    )
    figures: dict[str, Any] = {"bars": row[0], "securities": len(m.securities)}
    figures["violations"] = {
        "high below open or close": row[1],
        "low above open or close": row[2],
        "non-positive low": row[3],
        "no volume": row[4],
    }

    t = turnover(m).stack().dropna()
    figures["turnover"] = {
        "median": float(t.median()),
        "p99": float(t.quantile(0.99)),
        "p99.9": float(t.quantile(0.999)),
        "max": float(t.max()),
        "bars above shares outstanding": int((t > 1.0).sum()),
    }

    listed = m.securities[m.securities["status"] == "listed"]
    price = m.quotes["price"].reindex(listed["ticker"]).to_numpy()
    caps = np.sort(price * listed["shares"].to_numpy())[::-1]
    figures["caps"] = {
        "total": float(caps.sum()),
        "total_per_6000": float(caps.sum() * sim.CAP_CURVE_SIZE / len(m.securities)),
        "largest": float(caps[0]),
        "smallest": float(caps[-1]),
        "top10_share": float(caps[:10].sum() / caps.sum()),
    }

    # Splits and dividends: each shows in the raw closes by its size, and the served
    # adjusted series moves against the raw one by exactly the action's factor.
    split_moves: list[float] = []
    worst_factor_error = 0.0
    tickers = m.securities["ticker"]
    for security_id in set(m.splits["security_id"]) | set(m.dividends["security_id"]):
        raw = m.closes[security_id].dropna()
        series = await stocks.price_history(
            pool,
            tickers[security_id],
            start=raw.index[0].date(),
            end=raw.index[-1].date(),
            interval="daily",
            adjusted=True,
        )
        adjusted = pd.Series(series.close, index=pd.to_datetime(series.period))
        factor = adjusted / raw
        worst_factor_error = max(worst_factor_error, abs(factor.iloc[-1] - 1.0))
        for row in m.splits[m.splits["security_id"] == security_id].itertuples():
            i = raw.index.get_loc(row.ex_date)
            # Without the split the raw close would move by a daily return, not the ratio.
            split_moves.append(abs(np.log(raw.iloc[i] * row.ratio / raw.iloc[i - 1])))
            step = factor.iloc[i - 1] / factor.iloc[i]
            worst_factor_error = max(worst_factor_error, abs(step * row.ratio - 1.0))
        for row in m.dividends[m.dividends["security_id"] == security_id].itertuples():
            i = raw.index.get_loc(row.ex_date)
            step = factor.iloc[i - 1] / factor.iloc[i]
            expected = 1.0 - row.amount / raw.iloc[i - 1]
            worst_factor_error = max(worst_factor_error, abs(step / expected - 1.0))
    figures["actions"] = {
        "splits": len(m.splits),
        "dividends": len(m.dividends),
        "median |log move| of the raw close on a split day, net of the ratio": float(
            np.median(split_moves)
        ),
        "largest |log move| on a split day, net of the ratio": float(np.max(split_moves)),
        "median |log move| of a day": float(
            np.abs(np.log(ref.split_adjusted(m)).diff()).stack().median()
        ),
        "largest relative error of an adjustment factor": worst_factor_error,
    }
    return figures


def assert_plausible(figures: dict[str, Any]) -> None:
    assert figures["violations"] == dict.fromkeys(figures["violations"], 0), figures
    turn = figures["turnover"]
    assert turn["bars above shares outstanding"] == 0 and turn["max"] <= MAX_TURNOVER, turn
    assert MEDIAN_TURNOVER[0] <= turn["median"] <= MEDIAN_TURNOVER[1], turn
    assert P99_TURNOVER[0] <= turn["p99"] <= P99_TURNOVER[1], turn
    assert turn["p99.9"] > 5 * turn["median"], turn  # fat tails
    caps = figures["caps"]
    assert caps["largest"] <= MAX_CAP and caps["smallest"] > 1e6, caps
    assert TOTAL_CAP_PER_6000[0] <= caps["total_per_6000"] <= TOTAL_CAP_PER_6000[1], caps
    actions = figures["actions"]
    assert actions["splits"] > 0 and actions["dividends"] > 0, actions
    # A split explains its day's jump in the raw closes: net of the ratio, the split day
    # moves like any day (a wrong ratio would leave a jump of log 2 to log 10).
    net = actions["median |log move| of the raw close on a split day, net of the ratio"]
    assert net < 3 * actions["median |log move| of a day"], actions
    assert actions["largest relative error of an adjustment factor"] < 1e-9, actions


async def test_the_whole_loaded_universe_is_plausible(
    reference_universe: tuple[str, ref.MarketFrames], reference_pool: asyncpg.Pool
) -> None:
    async with reference_pool.acquire() as conn:
        figures = await check_plausibility(conn, reference_pool)
    assert figures["bars"] > 100_000
    assert_plausible(figures)


def test_caps_follow_the_rank_size_curve_of_the_us_market() -> None:
    caps = sim.caps_by_rank(6000)
    assert 3e12 <= caps[0] <= 4.5e12  # the largest US company, 2024-2025
    assert 45e12 <= caps.sum() <= 70e12
    assert 0.2 <= caps[:10].sum() / caps.sum() <= 0.4
    assert np.all(np.diff(caps) <= 0)

"""The universe figures of issue 10, served against recomputed: loads a simulated universe
into a database of its own and prints, next to an independent pandas recomputation
(``services/market/tests/reference.py``), the sector returns the service serves, the
index, index weights around splits, and betas.

    .venv/bin/python bench/market/figures.py [--size 1000] [--years 10] [--seed 20240101]
        [--betas 300] [--plausibility]

Run it before and after a change to the figures to record what changed on the same data.
Needs the PostgreSQL the tests use (``BOURSE_TEST_DATABASE_URL`` or the local one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import talib  # noqa: E402

from bourse.parts import MARKET  # noqa: E402
from services.market.app import migrations  # noqa: E402
from services.market.service import loading, stocks  # noqa: E402
from services.market.service import market as market_service  # noqa: E402
from services.market.tests import reference as ref  # noqa: E402
from services.market.tests import test_plausibility as plausible  # noqa: E402
from shared.db import (  # noqa: E402
    create_pool,
    drop_database,
    ensure_database,
    ensure_service_schema,
    migrate,
    open_connection,
    service_dsn,
)

ADMIN = os.environ.get("BOURSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def out(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def _served_sectors(served: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for s in served["sectors"]:
        equal = s.get("equal_weighted_percent") or {}
        for period, value in s["performance_percent"].items():
            rows.append(
                {
                    "sector": s["sector"],
                    "period": period,
                    "served": value,
                    "served_equal": equal.get(period),
                }
            )
    return pd.DataFrame(rows).set_index(["sector", "period"])


async def main(size: int, years: int, seed: int, betas: int, plausibility: bool) -> None:
    database = f"bourse_figures_{uuid.uuid4().hex[:8]}"
    await ensure_database(ADMIN, database)
    await ensure_service_schema(ADMIN, database=database, role=MARKET.db_role, schema=MARKET.schema)
    dsn = service_dsn(ADMIN, database=database, role=MARKET.db_role)
    try:
        conn = await open_connection(dsn)
        try:
            await migrate(conn, MARKET.schema, migrations())
            started = time.perf_counter()
            await loading.load_universe_on(conn, loading.universe_spec(size, years, seed))
            out(f"loaded {size} x {years}y (seed {seed}) in {time.perf_counter() - started:.1f}s")
            frames = await ref.read_frames(conn)
            served_index = await conn.fetch("SELECT * FROM market.market_index ORDER BY day")
        finally:
            await conn.close()
        pool = await create_pool(dsn, schema="market", application_name="figures")
        try:
            if plausibility:
                conn = await open_connection(dsn)
                try:
                    figures = await plausible.check_plausibility(conn, pool, frames)
                finally:
                    await conn.close()
                out("\nPlausibility of the whole universe:")
                out(json.dumps(figures, indent=2))
                plausible.assert_plausible(figures)
                out("every plausibility check passes")
            served = await market_service.sectors(pool)
            tickers = frames.securities[frames.securities["status"] == "listed"]["ticker"]
            analyses = {}
            for ticker in list(tickers)[:betas]:
                _, _, result = await stocks.analysis(pool, ticker)
                analyses[ticker] = result
        finally:
            await pool.close()
    finally:
        await drop_database(ADMIN, database)

    expected = ref.sector_returns(frames)
    table = expected.join(_served_sectors(served))
    pd.set_option("display.width", 200)
    out("\nSector returns, percent (served vs recomputed):")
    out(table.xs("1y", level="period").round(2).to_string())
    diff = (table["served"] - table["cap_weighted"]).abs()
    out(f"max |served - cap-weighted| over all sectors and periods: {diff.max():.4f} pp")

    levels = ref.index_levels(frames)
    stored = pd.DataFrame(
        [dict(r) for r in served_index], columns=list(served_index[0].keys())
    ).set_index("day")
    stored.index = pd.to_datetime(stored.index)
    joined = levels.join(stored.add_suffix("_served"), how="inner")
    out("\nIndex, last session:")
    out(joined.iloc[-1].round(4).to_string())
    out(
        "max relative |served price-return level - recomputed|:"
        f" {(joined['level_served'] / joined['price_return'] - 1).abs().max():.2e}"
    )
    if "total_return_level_served" in joined:
        out(
            "max relative |served total-return level - recomputed|:"
            f" {(joined['total_return_level_served'] / joined['total_return'] - 1).abs().max():.2e}"
        )

    worst: tuple[float, str, Any, float, float, float] | None = None
    split_px = ref.split_adjusted(frames)
    for row in frames.splits.itertuples():
        days = frames.closes.index[frames.closes.index < row.ex_date]
        if len(days) == 0:
            continue
        day = days[-1]
        naive = ref.naive_weights(frames, day)[row.security_id]
        true = ref.true_weights(frames, day, split_px)[row.security_id]
        ratio = naive / true
        if worst is None or ratio > worst[0]:
            ticker = frames.securities.loc[row.security_id, "ticker"]
            worst = (ratio, ticker, day.date(), row.ratio, naive, true)
    if worst is not None:
        ratio, ticker, day, split, naive, true = worst
        out(
            f"\nWeight of {ticker} on {day}, the session before its {split:g}-for-1 split:"
            f" as-traded price x today's shares {naive * 100:.3f}%,"
            f" market value {true * 100:.3f}%"
        )

    # EMA200 over the last three years only (what the analysis read before issue 10) against
    # EMA200 over the whole adjusted history.
    adjusted = ref.total_return_prices(frames)
    start = adjusted.index[-1] - pd.Timedelta(days=3 * 366)
    gaps = []
    for security_id in adjusted.columns:
        series = adjusted[security_id].dropna()
        recent = series[series.index >= start]
        if len(series) > len(recent) >= 200:
            whole = talib.EMA(series.to_numpy(), 200)[-1]
            gaps.append(abs(talib.EMA(recent.to_numpy(), 200)[-1] / whole - 1.0))
    if gaps:
        out(
            f"\nEMA200 over the last 3 years vs over the whole history, {len(gaps)} securities:"
            f" median gap {np.median(gaps) * 100:.3f}%, max {max(gaps) * 100:.3f}%"
        )

    total = levels["total_return"]
    diffs = []
    total_px = ref.total_return_prices(frames)
    id_of = {t: i for i, t in frames.securities["ticker"].items()}
    for ticker, result in analyses.items():
        served_beta = result.get("beta", {}).get("value")
        if served_beta is None:
            continue
        recomputed = ref.beta(total_px[id_of[ticker]].dropna(), total)
        diffs.append(abs(served_beta - recomputed))
    if diffs:
        out(
            f"\nBeta against the recomputed total-return index, {len(diffs)} securities:"
            f" max |served - recomputed| {max(diffs):.4f}, mean {np.mean(diffs):.4f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20240101)
    parser.add_argument("--betas", type=int, default=300)
    parser.add_argument(
        "--plausibility", action="store_true", help="run the plausibility checks on it too"
    )
    args = parser.parse_args()
    asyncio.run(main(args.size, args.years, args.seed, args.betas, args.plausibility))

"""The universe figures the service serves agree with an independent recomputation.

A universe of its own (``reference_universe``: 150 securities x 4 years with splits,
reverse splits, dividends, listings and delistings) is loaded as in production; the sector
returns, both index variants and every beta the service serves are then recomputed from
the raw bars, corporate actions and share counts by ``reference.py`` (pandas, written apart
from the numpy code) and must agree to the served rounding.
"""

from __future__ import annotations

from datetime import date

import asyncpg
import numpy as np
import pandas as pd
import pytest
import talib

from services.market.service import market as market_service
from services.market.service import stocks
from services.market.tests import reference as ref
from services.market.tests.factories import in_request


def test_the_universe_has_what_the_figures_must_survive(
    reference_universe: tuple[str, ref.MarketFrames],
) -> None:
    frames = reference_universe[1]
    assert len(frames.splits) >= 3, "no splits: the reconciliation would not test them"
    assert len(frames.dividends) >= 50
    assert (frames.securities["status"] == "delisted").any()


async def test_sector_returns_agree_with_the_recomputation(
    reference_pool: asyncpg.Pool, reference_universe: tuple[str, ref.MarketFrames]
) -> None:
    served = await in_request(reference_pool, market_service.sectors)
    expected = ref.sector_returns(reference_universe[1])
    compared = 0
    for sector in served["sectors"]:
        for served_key, column in (
            ("performance_percent", "cap_weighted"),
            ("equal_weighted_percent", "equal_weighted"),
            ("total_return_percent", "total_return"),
        ):
            for period, value in sector[served_key].items():
                want = expected.loc[(sector["sector"], period), column]
                assert value == pytest.approx(want, abs=1e-3), (sector["sector"], period, column)
                compared += 1
    assert compared == 11 * 6 * 3
    assert "sum(shares x price now)" in served["methodology"]


async def test_both_index_variants_agree_with_the_recomputation(
    reference_pool: asyncpg.Pool, reference_universe: tuple[str, ref.MarketFrames]
) -> None:
    served = await in_request(reference_pool, market_service.index_history, None, None)
    levels = pd.DataFrame(served["levels"]).set_index("date")
    levels.index = pd.to_datetime(levels.index)
    expected = ref.index_levels(reference_universe[1])
    assert list(levels.index) == list(expected.index)
    np.testing.assert_allclose(levels["price_return"], expected["price_return"], rtol=1e-9)
    np.testing.assert_allclose(levels["total_return"], expected["total_return"], rtol=1e-9)
    assert (levels["constituents"] == expected["constituents"]).all()
    # Dividends make the total-return index end above the price index.
    assert levels["total_return"].iloc[-1] > levels["price_return"].iloc[-1]


async def test_every_beta_agrees_with_the_recomputation(
    reference_pool: asyncpg.Pool, reference_universe: tuple[str, ref.MarketFrames]
) -> None:
    frames = reference_universe[1]
    benchmark = ref.index_levels(frames)["total_return"]
    prices = ref.total_return_prices(frames)
    listed = frames.securities[frames.securities["status"] == "listed"]
    checked = 0
    for security_id, ticker in listed["ticker"].items():
        _, _, result = await in_request(reference_pool, stocks.analysis, ticker)
        served = result["beta"]["value"]
        series = prices[security_id].dropna()
        if len(series) < 30:
            assert served is None
            continue
        assert served == pytest.approx(ref.beta(series, benchmark), abs=1e-5), ticker
        checked += 1
    assert checked >= 100


async def test_every_indicator_agrees_with_ta_lib_over_the_whole_history(
    reference_pool: asyncpg.Pool, reference_universe: tuple[str, ref.MarketFrames]
) -> None:
    frames = reference_universe[1]
    listed = frames.securities[frames.securities["status"] == "listed"]
    checked = 0
    for ticker in listed["ticker"]:
        _, _, result = await in_request(reference_pool, stocks.analysis, ticker)
        # The whole adjusted history, as the prices route serves it.
        series = await in_request(
            reference_pool,
            stocks.price_history,
            ticker,
            start=date(1900, 1, 1),
            end=result["as_of"],
            interval="daily",
            adjusted=True,
        )
        close, high, low = series.close, series.high, series.low
        assert result["history"]["sessions"] == len(close)
        if len(close) < 300:
            continue
        averages = {(m["type"], m["period"]): m["value"] for m in result["moving_averages"]}
        for period in (20, 50, 200):
            assert averages[("SMA", period)] == pytest.approx(
                talib.SMA(close, period)[-1], abs=1e-4
            )
            assert averages[("EMA", period)] == pytest.approx(
                talib.EMA(close, period)[-1], abs=1e-4
            ), (ticker, period)
        assert result["rsi"]["value"] == pytest.approx(talib.RSI(close, 14)[-1], abs=1e-4)
        line, signal, histogram = talib.MACD(close, 12, 26, 9)
        assert result["macd"]["macd"] == pytest.approx(line[-1], abs=1e-6)
        assert result["macd"]["signal"] == pytest.approx(signal[-1], abs=1e-6)
        assert result["macd"]["histogram"] == pytest.approx(histogram[-1], abs=1e-6)
        bands = talib.BBANDS(close, 20, 2.0, 2.0)
        for name, band in zip(("upper", "middle", "lower"), bands, strict=True):
            assert result["bollinger_bands"][name] == pytest.approx(band[-1], abs=1e-4)
        atr = talib.ATR(high, low, close, 14)[-1]
        assert result["atr"]["value"] == pytest.approx(atr, abs=1e-4)
        sharpe, sortino = ref.sharpe_sortino(pd.Series(close))
        assert result["sharpe_ratio"]["value"] == pytest.approx(sharpe, abs=1e-5)
        assert result["sortino_ratio"]["value"] == pytest.approx(sortino, abs=1e-5)
        checked += 1
    assert checked >= 100

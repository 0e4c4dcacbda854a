"""An independent recomputation of the market's universe figures, for reconciliation.

Written apart from the production code on purpose: pandas instead of numpy arrays, its own
SQL straight from the tables (raw bars, corporate actions, share counts, quotes), its own
adjustment, index and period arithmetic. It shares no function with ``services.market``,
so a mistake in one is not repeated in the other. Used by ``test_reconciliation.py`` and by
``bench/market/figures.py`` (the before/after figures of issue 10).

Conventions (those documented in ``docs/market.md``):
- split-adjusted price: raw close divided by the ratio of every split after that day;
  total-return price: split-adjusted, times ``1 - dividend / raw close of the session
  before the ex-date`` for every later dividend;
- index: chained daily, weights = the previous session's market value (split-adjusted
  price x today's shares outstanding), constituents = securities with bars on both
  sessions; price return from split-adjusted prices, total return from total-return prices;
- sector return over a period: cap-weighted = sum(shares x price now) / sum(shares x
  split-adjusted base price) - 1 over the sector's listed securities that have a base;
  equal-weighted = the mean of their price returns; total return = the cap-weighted
  (base market value) mean of their total returns.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import asyncpg
import numpy as np
import pandas as pd


@dataclass
class MarketFrames:
    closes: pd.DataFrame  # raw closes, index = day (Timestamp), columns = security_id
    volumes: pd.DataFrame
    securities: pd.DataFrame  # index = security_id: ticker, sector, status, shares
    splits: pd.DataFrame  # security_id, ex_date, ratio
    dividends: pd.DataFrame  # security_id, ex_date, amount
    quotes: pd.DataFrame  # index = ticker: price, previous_close


async def read_table(conn: asyncpg.Connection, query: str) -> pd.DataFrame:
    """The rows of ``query`` as a DataFrame, through COPY ... CSV (millions of rows)."""
    buffer = io.BytesIO()

    async def write(chunk: bytes) -> None:
        buffer.write(chunk)

    await conn.copy_from_query(query, output=write, format="csv", header=True)
    buffer.seek(0)
    return pd.read_csv(buffer)


async def read_frames(conn: asyncpg.Connection) -> MarketFrames:
    frame = await read_table(conn, "SELECT security_id, day, close, volume FROM market.daily_bars")
    frame["day"] = pd.to_datetime(frame["day"])
    closes = frame.pivot(index="day", columns="security_id", values="close").sort_index()
    volumes = frame.pivot(index="day", columns="security_id", values="volume").sort_index()
    sec = await conn.fetch(
        "SELECT security_id, ticker, sector, status, shares_outstanding FROM market.securities"
    )
    securities = pd.DataFrame(
        [tuple(r) for r in sec], columns=["security_id", "ticker", "sector", "status", "shares"]
    ).set_index("security_id")
    securities["shares"] = securities["shares"].astype(float)
    acts = await conn.fetch(
        "SELECT security_id, ex_date, kind, value FROM market.corporate_actions"
    )
    actions = pd.DataFrame(
        [tuple(r) for r in acts], columns=["security_id", "ex_date", "kind", "value"]
    )
    actions["ex_date"] = pd.to_datetime(actions["ex_date"])
    splits = actions[actions["kind"] == "split"].rename(columns={"value": "ratio"})
    dividends = actions[actions["kind"] == "dividend"].rename(columns={"value": "amount"})
    q = await conn.fetch("SELECT ticker, price, previous_close FROM market.latest_quotes")
    quotes = pd.DataFrame(
        [tuple(r) for r in q], columns=["ticker", "price", "previous_close"]
    ).set_index("ticker")
    return MarketFrames(closes, volumes, securities, splits, dividends, quotes)


def _later_product(events: pd.DataFrame) -> pd.DataFrame:
    """For each day, the product of ``events`` (a day x security frame of factors, 1 where
    nothing happens) over the days strictly after it."""
    through = events.iloc[::-1].cumprod().iloc[::-1]
    return through.shift(-1).fillna(1.0)


def _events(m: MarketFrames, rows: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
    events = pd.DataFrame(1.0, index=m.closes.index, columns=m.closes.columns)
    for sid, ex, value in zip(rows["security_id"], rows["ex_date"], values, strict=True):
        events.loc[ex, sid] = events.loc[ex, sid] * value
    return events


def split_adjusted(m: MarketFrames) -> pd.DataFrame:
    return m.closes / _later_product(_events(m, m.splits, m.splits["ratio"]))


def total_return_prices(m: MarketFrames) -> pd.DataFrame:
    # The raw close of the session before each ex-date (bars are contiguous per security).
    previous = m.closes.shift(1).stack()
    keys = pd.MultiIndex.from_arrays([m.dividends["ex_date"], m.dividends["security_id"]])
    factors = 1.0 - m.dividends["amount"].to_numpy() / previous.reindex(keys).to_numpy()
    return split_adjusted(m) * _later_product(_events(m, m.dividends, pd.Series(factors)))


def index_levels(m: MarketFrames, base: float = 1000.0) -> pd.DataFrame:
    """Price-return and total-return index levels per session, and constituents."""
    split_px = split_adjusted(m)
    total_px = total_return_prices(m)
    shares = m.securities["shares"].reindex(split_px.columns)
    value = split_px * shares
    previous = value.shift(1)
    both = value.notna() & previous.notna()
    prev_value = previous.where(both)
    weight_sum = prev_value.sum(axis=1)
    price_growth = value.where(both).sum(axis=1) / weight_sum
    total_growth = (prev_value * total_px / total_px.shift(1)).where(both).sum(axis=1) / weight_sum
    price_growth.iloc[0] = total_growth.iloc[0] = 1.0
    return pd.DataFrame(
        {
            "price_return": base * price_growth.fillna(1.0).cumprod(),
            "total_return": base * total_growth.fillna(1.0).cumprod(),
            "constituents": both.sum(axis=1),
        }
    )


def naive_weights(m: MarketFrames, day: pd.Timestamp) -> pd.Series:
    """The weights the index used before issue 10: as-traded close x today's shares."""
    value = m.closes.loc[day] * m.securities["shares"].reindex(m.closes.columns)
    return value / value.sum()


def true_weights(
    m: MarketFrames, day: pd.Timestamp, split_px: pd.DataFrame | None = None
) -> pd.Series:
    """Market value on ``day`` (split-adjusted price x today's shares) over the total."""
    prices = split_adjusted(m) if split_px is None else split_px
    value = prices.loc[day] * m.securities["shares"].reindex(m.closes.columns)
    return value / value.sum()


def period_targets(as_of: pd.Timestamp) -> dict[str, pd.Timestamp]:
    return {
        "1w": as_of - pd.Timedelta(days=7),
        "1m": as_of - pd.DateOffset(months=1),
        "3m": as_of - pd.DateOffset(months=3),
        "ytd": pd.Timestamp(year=as_of.year - 1, month=12, day=31),
        "1y": as_of - pd.DateOffset(months=12),
    }


def sector_returns(m: MarketFrames) -> pd.DataFrame:
    """Per (sector, period): cap-weighted price return, equal-weighted price return,
    cap-weighted total return, the naive (pre-issue-10) figure, all in percent."""
    split_px = split_adjusted(m)
    total_px = total_return_prices(m)
    as_of = m.closes.index[-1]
    listed = m.securities[(m.securities["status"] == "listed")]
    listed = listed[listed.index.isin(m.closes.columns)]
    listed = listed[m.closes.loc[as_of, listed.index].notna()]
    price_now = m.quotes["price"].reindex(listed["ticker"]).to_numpy()
    shares = listed["shares"].to_numpy()
    rows = []
    targets = {"1d": None, **period_targets(as_of)}
    for period, target in targets.items():
        if target is None:
            # 1d: from the previous close, as a price return (no dividend in 1d).
            base_split = base_total = split_px[listed.index].iloc[-2].to_numpy()
        else:
            upto = split_px.index[split_px.index <= target]
            if len(upto) == 0:
                base_split = base_total = np.full(len(listed), np.nan)
            else:
                base_split = split_px.loc[upto[-1], listed.index].to_numpy()
                base_total = total_px.loc[upto[-1], listed.index].to_numpy()
        frame = pd.DataFrame(
            {
                "sector": listed["sector"].to_numpy(),
                "now": price_now,
                "shares": shares,
                "base_split": base_split,
                "base_total": base_total,
            }
        ).dropna()
        frame["cap_now"] = frame["shares"] * frame["now"]
        frame["cap_base"] = frame["shares"] * frame["base_split"]
        frame["price_return"] = frame["now"] / frame["base_split"] - 1.0
        frame["total_growth"] = frame["now"] / frame["base_total"]
        for sector, g in frame.groupby("sector"):
            rows.append(
                {
                    "sector": sector,
                    "period": period,
                    "cap_weighted": (g["cap_now"].sum() / g["cap_base"].sum() - 1.0) * 100.0,
                    "equal_weighted": g["price_return"].mean() * 100.0,
                    "total_return": (
                        (g["cap_base"] * g["total_growth"]).sum() / g["cap_base"].sum() - 1.0
                    )
                    * 100.0,
                    "naive": (g["cap_now"] * (g["total_growth"] - 1.0)).sum()
                    / g["cap_now"].sum()
                    * 100.0,
                }
            )
    return pd.DataFrame(rows).set_index(["sector", "period"])


def beta(asset: pd.Series, benchmark: pd.Series, window: int = 252) -> float:
    """OLS beta of simple daily returns over the last ``window`` common returns."""
    joined = pd.concat([asset, benchmark], axis=1, join="inner").dropna()
    returns = joined.pct_change().dropna().iloc[-window:]
    return float(returns.iloc[:, 0].cov(returns.iloc[:, 1]) / returns.iloc[:, 1].var())


def sharpe_sortino(
    close: pd.Series, window: int = 252, risk_free: float = 0.0
) -> tuple[float, float]:
    """(Sharpe, Sortino) of the last ``window`` simple daily returns, empyrical's
    conventions: Sharpe = mean / std (ddof 1) x sqrt(252); Sortino = mean x 252 /
    (root mean square of the negative excess returns x sqrt(252))."""
    daily_rf = (1.0 + risk_free) ** (1.0 / 252) - 1.0
    excess = close.pct_change().dropna().iloc[-window:] - daily_rf
    sharpe = excess.mean() / excess.std() * np.sqrt(252)
    downside = np.sqrt((excess.clip(upper=0.0) ** 2).mean()) * np.sqrt(252)
    return float(sharpe), float(excess.mean() * 252 / downside)

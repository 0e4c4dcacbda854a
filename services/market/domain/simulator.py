"""A deterministic, seeded universe of US-style securities with daily history.

Nothing here is real market data: every security it makes is marked ``simulated``.

The model, per session t and security i (all draws from generators seeded by
``(seed, purpose, i)``, so a security's history does not depend on how the universe is
split into chunks)::

    r[i, t] = mu[i] + beta_m[i] * m[t] + beta_s[i] * s[sector(i), t] + e[i, t]

``m`` (market), ``s`` (one factor per GICS sector) and ``e`` (idiosyncratic) are each
GARCH(1,1) processes driven by unit-variance Student-t innovations: fat tails and
volatility clustering. Prices move on the real NYSE calendar. On an ex-date the reference
price is the previous close divided by the split ratio, less the cash dividend; the day's
return then applies, so split- and dividend-adjusted closes reproduce ``exp(r)`` exactly
(up to rounding to cents). Splits happen after the price has risen past a per-security
threshold, 1-for-10 reverse splits when it sinks below $1; about half of the universe pays
quarterly dividends (utilities and REITs most, biotech least); a few securities list during
the window and a few are delisted.

Calibration (sources and checks in ``docs/market.md``, "The simulator's calibration"):
each security's market capitalisation on its last session is fixed in advance from the
rank-size curve of the US market (:data:`CAP_BY_RANK`: about $3.6T for the largest name,
$55-65T in total for 6,000 securities); the share count is that cap over the last close,
restated for every split before it. Idiosyncratic volatility falls with size (mega caps
~0.45x the sector's, micro caps up to 1.5x). Daily volume = shares outstanding that day x
the security's base turnover (log-normal around 0.5 % a day) x a fat-tailed factor that
rises with the size of the day's move, at least one round lot and at most half the shares
outstanding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from services.market.domain.sectors import SECTOR_NAMES, SECTORS

DATA_SOURCE = "simulated"

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

# The first securities are the hand-named ones the platform has always shown in demos.
NAMED: tuple[tuple[str, str, str, str, str], ...] = (
    ("ACME", "Acme Widgets Inc.", "NYSE", "Industrials", "Machinery"),
    (
        "BRGT",
        "Bright Semiconductor Corp.",
        "NASDAQ",
        "Information Technology",
        "Semiconductors & Semiconductor Equipment",
    ),
    ("CLDX", "Cloudex Software Ltd.", "NASDAQ", "Information Technology", "Software"),
    ("DLTA", "Delta Regional Bank", "NYSE", "Financials", "Banks"),
    ("EVRG", "Evergreen Power Co.", "NYSE", "Utilities", "Electric Utilities"),
    ("FRSH", "Fresh Harvest Foods", "NYSE", "Consumer Staples", "Food Products"),
    ("GLXY", "Galaxy Media Group", "NASDAQ", "Communication Services", "Media"),
    ("HLTH", "Helix Therapeutics", "NASDAQ", "Health Care", "Biotechnology"),
    ("IRON", "Ironclad Materials", "NYSE", "Materials", "Metals & Mining"),
    ("JETS", "Jetstream Airlines", "NYSE", "Industrials", "Passenger Airlines"),
    ("KRFT", "Kraftwerk Retail", "NYSE", "Consumer Discretionary", "Broadline Retail"),
    ("LAND.B", "Landmark Realty Class B", "NYSE", "Real Estate", "Residential REITs"),
    ("MOIL", "Meridian Oil & Gas", "NYSE", "Energy", "Oil, Gas & Consumable Fuels"),
)

# Symbols the simulator never issues: the test suite uses them as "no such stock".
RESERVED_TICKERS = frozenset({"ZZZZ", "ZZZZZ"})

# Share of the universe, market beta, sector-factor loading, idiosyncratic annual vol,
# probability of paying dividends, by sector.
_SECTOR_PROFILE: dict[str, tuple[float, float, float, float, float]] = {
    "Information Technology": (0.15, 1.25, 1.0, 0.38, 0.25),
    "Health Care": (0.16, 0.95, 1.0, 0.55, 0.20),
    "Financials": (0.15, 1.05, 1.0, 0.25, 0.60),
    "Industrials": (0.13, 1.05, 1.0, 0.28, 0.55),
    "Consumer Discretionary": (0.11, 1.15, 1.0, 0.35, 0.40),
    "Real Estate": (0.06, 0.85, 1.0, 0.22, 0.90),
    "Energy": (0.05, 1.10, 1.3, 0.35, 0.60),
    "Materials": (0.05, 1.05, 1.0, 0.30, 0.55),
    "Communication Services": (0.05, 1.00, 1.0, 0.35, 0.30),
    "Consumer Staples": (0.05, 0.65, 0.8, 0.20, 0.75),
    "Utilities": (0.04, 0.50, 0.8, 0.16, 0.92),
}

# The rank-size curve of US listed equity market capitalisation, for a universe of 6,000
# (rank, cap in USD), interpolated log-log; a universe of n securities takes its caps at
# the ranks (k + 0.5) x 6000 / n. Anchored on the market of 2024-2025: the three largest
# names at $3-4T, the tenth near $1T, the 1,000th (the Russell 1000's cut-off) near $6B,
# the 3,000th near $400M, micro caps below.
CAP_BY_RANK: tuple[tuple[float, float], ...] = (
    (1.0, 3.6e12),
    (3.0, 3.0e12),
    (10.0, 0.9e12),
    (50.0, 1.8e11),
    (100.0, 1.0e11),
    (500.0, 1.5e10),
    (1000.0, 6.0e9),
    (2000.0, 1.5e9),
    (3000.0, 4.0e8),
    (4500.0, 1.0e8),
    (6000.0, 1.5e7),
)
CAP_CURVE_SIZE = 6000
MEDIAN_TURNOVER = 0.005  # daily, fraction of shares outstanding
MAX_TURNOVER = 0.5  # a day never trades more than half the company
ROUND_LOT = 100

_SYLLABLES = [
    "al",
    "ar",
    "bel",
    "bri",
    "cal",
    "cor",
    "dan",
    "del",
    "dor",
    "el",
    "em",
    "en",
    "fal",
    "fer",
    "gal",
    "gen",
    "hal",
    "har",
    "in",
    "ion",
    "jas",
    "kal",
    "ken",
    "lan",
    "lor",
    "mar",
    "mel",
    "mon",
    "nor",
    "nov",
    "ol",
    "or",
    "pax",
    "per",
    "quin",
    "ral",
    "ren",
    "ros",
    "sal",
    "sen",
    "sol",
    "ster",
    "tal",
    "ter",
    "tor",
    "ul",
    "val",
    "ven",
    "vor",
    "wen",
    "xan",
    "yor",
    "zen",
]
_SUFFIXES = ("Inc.", "Corp.", "Holdings", "Group", "Co.", "Ltd.", "Technologies", "Partners")
_EXCHANGES = ("NASDAQ", "NYSE", "NYSE American")


@dataclass(frozen=True)
class UniverseSpec:
    """What to simulate: ``size`` securities over ``sessions`` (NYSE days, ascending)."""

    size: int
    sessions: npt.NDArray[np.datetime64]
    seed: int = 20_240_101

    @property
    def days(self) -> int:
        return len(self.sessions)


@dataclass(frozen=True)
class SimulatedSecurity:
    ticker: str
    name: str
    exchange: str
    sector: str
    industry: str


@dataclass(frozen=True)
class Universe:
    """The securities and the per-security model parameters (arrays indexed like them)."""

    spec: UniverseSpec
    securities: list[SimulatedSecurity]
    sector_index: I64
    first_day: I64  # index into sessions of the first bar
    last_day: I64  # index of the last bar (the last session unless delisted)
    start_price: F64
    beta_market: F64
    beta_sector: F64
    idio_vol: F64  # annual
    drift: F64  # daily
    dividend_yield: F64  # annual; 0 for non-payers
    dividend_phase: I64
    split_threshold: F64
    final_cap: F64  # market capitalisation on the last session (USD)
    turnover: F64  # base daily turnover, fraction of shares outstanding

    @property
    def delisted(self) -> npt.NDArray[np.bool_]:
        return self.last_day < self.spec.days - 1


@dataclass(frozen=True)
class FactorPaths:
    market: F64  # [days] daily market factor returns
    sector: F64  # [sectors, days]
    market_var: F64  # conditional variances, to scale intraday ranges
    sector_var: F64


@dataclass(frozen=True)
class SimulatedBars:
    """Bars of a slice of the universe, ordered by (security, day); ``security`` indexes
    the universe. ``actions`` are (security, day index, kind, value, price factor) with
    kind ``split`` or ``dividend``."""

    security: I32
    day: I32
    open: F64
    high: F64
    low: F64
    close: F64
    volume: I64
    actions: list[tuple[int, int, str, float, float]]
    shares_outstanding: I64  # per security of the slice, at the end of the window

    def __len__(self) -> int:
        return len(self.security)


def build_universe(spec: UniverseSpec) -> Universe:
    """The securities and their parameters: cheap (no price paths)."""
    rng = np.random.default_rng([spec.seed, 1])
    n = spec.size
    sectors = list(SECTOR_NAMES)
    shares = np.array([_SECTOR_PROFILE[s][0] for s in sectors])
    sector_index = rng.choice(len(sectors), size=n, p=shares / shares.sum())
    securities: list[SimulatedSecurity] = []
    taken: set[str] = set(RESERVED_TICKERS)
    for i in range(n):
        if i < len(NAMED):
            ticker, name, exchange, sector, industry = NAMED[i]
            sector_index[i] = sectors.index(sector)
        else:
            sector = sectors[sector_index[i]]
            industry = SECTORS[sector][int(rng.integers(len(SECTORS[sector])))]
            ticker = _ticker(rng, taken)
            name = _name(rng, industry)
            exchange = _EXCHANGES[int(rng.choice(3, p=[0.55, 0.40, 0.05]))]
        taken.add(ticker)
        securities.append(SimulatedSecurity(ticker, name, exchange, sector, industry))

    profile = np.array([_SECTOR_PROFILE[sectors[k]] for k in sector_index])
    days = spec.days
    first_day = np.zeros(n, dtype=np.int64)
    last_day = np.full(n, days - 1, dtype=np.int64)
    if days > 400:
        ipo = rng.random(n) < 0.06
        ipo[: len(NAMED)] = False
        first_day[ipo] = rng.integers(20, days - 300, size=int(ipo.sum()))
        gone = rng.random(n) < 0.02
        gone[: len(NAMED)] = False
        lo = first_day[gone] + 250
        last_day[gone] = lo + (rng.random(int(gone.sum())) * (days - 20 - lo)).astype(np.int64)
    biotech = np.array([s.industry == "Biotechnology" for s in securities])
    delisted = last_day < days - 1
    # A provisional size (a random rank of the cap curve) sets the volatility: smaller
    # companies are more volatile, ~0.45x the sector's idiosyncratic vol at $3T, 1x at
    # $10B, up to 1.5x for micro caps (biotech 1.25x more: ~100 % a year at the most).
    provisional = caps_by_rank(n)[rng.permutation(n)]
    size_vol = np.clip((provisional / 1e10) ** -0.14, 0.45, 1.5)
    idio = profile[:, 3] * size_vol * np.exp(rng.normal(0.0, 0.2, n))
    idio[biotech] *= 1.25
    payer = rng.random(n) < np.where(biotech, 0.03, profile[:, 4])
    dividend_yield = np.where(payer, rng.uniform(0.005, 0.05, n), 0.0)
    start_price = np.exp(rng.normal(math.log(35.0), 0.9, n)).clip(3.0, 800.0)
    beta_market = (profile[:, 1] + rng.normal(0.0, 0.25, n)).clip(0.15, 2.4)
    beta_sector = profile[:, 2] * rng.uniform(0.6, 1.3, n)
    drift = rng.normal(0.0, 0.0002, n)
    # The final caps follow the curve exactly, ranked by provisional size x what the
    # security's path makes of it: the winners of the window end large, the losers small
    # (ranking at random would give a company that lost 99 % a huge cap at the start).
    growth = _log_growth(
        spec, sector_index, beta_market, beta_sector, idio, drift, first_day, last_day
    )
    cap = np.empty(n)
    cap[np.argsort(-(np.log(provisional) + growth), kind="stable")] = caps_by_rank(n)
    cap[delisted] *= 0.2  # companies that go away are mostly small ones
    return Universe(
        spec=spec,
        securities=securities,
        sector_index=sector_index.astype(np.int64),
        first_day=first_day,
        last_day=last_day,
        start_price=start_price,
        beta_market=beta_market,
        beta_sector=beta_sector,
        idio_vol=idio,
        drift=drift,
        dividend_yield=dividend_yield,
        dividend_phase=rng.integers(0, 63, n),
        split_threshold=rng.uniform(250.0, 900.0, n),
        final_cap=cap,
        turnover=np.exp(rng.normal(math.log(MEDIAN_TURNOVER), 0.6, n)).clip(0.0005, 0.05),
    )


def _idiosyncratic(idio_vol: F64, z: F64) -> F64:
    """GARCH(1,1) idiosyncratic returns of unit-variance innovations ``z`` [n, days]."""
    var_lr = (idio_vol**2) / 252.0
    alpha, beta = 0.05, 0.93
    omega = var_lr * (1.0 - alpha - beta)
    out = np.empty_like(z)
    var = var_lr.copy()
    prev = np.zeros(len(idio_vol))
    for t in range(z.shape[1]):
        var = omega + alpha * prev**2 + beta * var
        prev = np.sqrt(var) * z[:, t]
        out[:, t] = prev
    return out


def _idio_innovations(seed: int, i: int, days: int) -> tuple[np.random.Generator, F64]:
    """The security's generator and its first draw, the idiosyncratic innovations."""
    rng = np.random.default_rng([seed, 3, int(i)])
    return rng, _unit_t(rng, 4.0, days)


def _log_growth(
    spec: UniverseSpec,
    sector_index: I64,
    beta_market: F64,
    beta_sector: F64,
    idio_vol: F64,
    drift: F64,
    first_day: I64,
    last_day: I64,
    chunk: int = 500,
) -> F64:
    """Each security's total log return over its life: the sum of the same daily returns
    :func:`simulate_bars` draws (before dividends and the one-cent floor)."""
    factors = factor_paths(spec)
    days = spec.days
    out = np.empty(spec.size)
    day_index = np.arange(days)
    for start in range(0, spec.size, chunk):
        idx = np.arange(start, min(start + chunk, spec.size))
        z = np.array([_idio_innovations(spec.seed, int(i), days)[1] for i in idx])
        returns = (
            drift[idx][:, None]
            + beta_market[idx][:, None] * factors.market
            + beta_sector[idx][:, None] * factors.sector[sector_index[idx]]
            + _idiosyncratic(idio_vol[idx], z)
        )
        alive = (day_index > first_day[idx][:, None]) & (day_index <= last_day[idx][:, None])
        out[idx] = np.where(alive, returns, 0.0).sum(axis=1)
    return out


def caps_by_rank(n: int) -> F64:
    """The market caps of a universe of ``n`` securities, largest first (:data:`CAP_BY_RANK`)."""
    ranks = (np.arange(n) + 0.5) * CAP_CURVE_SIZE / max(n, 1) + 0.5
    anchors = np.array(CAP_BY_RANK)
    return np.asarray(
        np.exp(np.interp(np.log(ranks), np.log(anchors[:, 0]), np.log(anchors[:, 1])))
    )


def factor_paths(spec: UniverseSpec) -> FactorPaths:
    """Market and sector factor returns for every session."""
    rng = np.random.default_rng([spec.seed, 2])
    market, market_var = _garch(rng, 1, spec.days, 0.15, 0.08, 0.90, 5.0)
    sector, sector_var = _garch(rng, len(SECTOR_NAMES), spec.days, 0.09, 0.06, 0.92, 6.0)
    return FactorPaths(market[0] + 0.07 / 252, sector, market_var[0], sector_var)


def simulate_bars(universe: Universe, factors: FactorPaths, start: int, stop: int) -> SimulatedBars:
    """Daily bars (and actions) of securities ``start:stop`` of ``universe``."""
    n = stop - start
    days = universe.spec.days
    seed = universe.spec.seed
    idx = np.arange(start, stop)
    # Per-security draws: the same for a security whatever the chunking.
    idio_z = np.empty((n, days))
    gap_z = np.empty((n, days))
    range_z = np.empty((n, days))
    low_z = np.empty((n, days))
    vol_z = np.empty((n, days))
    split_u = np.empty((n, days))
    for row, i in enumerate(idx):
        rng, idio_z[row] = _idio_innovations(seed, int(i), days)
        gap_z[row] = rng.standard_normal(days)
        range_z[row] = np.abs(rng.standard_normal(days))
        low_z[row] = np.abs(rng.standard_normal(days))
        vol_z[row] = rng.standard_normal(days)
        split_u[row] = rng.random(days)

    sector_k = universe.sector_index[idx]
    beta_m = universe.beta_market[idx][:, None]
    beta_s = universe.beta_sector[idx][:, None]
    idio_var_lr = (universe.idio_vol[idx] ** 2) / 252.0
    idio = _idiosyncratic(universe.idio_vol[idx], idio_z)
    sector_ret = factors.sector[sector_k]
    returns = universe.drift[idx][:, None] + beta_m * factors.market + beta_s * sector_ret + idio
    total_sd = np.sqrt(
        beta_m**2 * factors.market_var
        + beta_s**2 * factors.sector_var[sector_k]
        + idio_var_lr[:, None]
    )

    first = universe.first_day[idx]
    last = universe.last_day[idx]
    quarterly = universe.dividend_yield[idx] / 4.0
    phase = universe.dividend_phase[idx]
    threshold = universe.split_threshold[idx]
    close = np.empty((n, days))
    opened = np.empty((n, days))
    shares_factor = np.ones((n, days))
    actions: list[tuple[int, int, str, float]] = []
    price = universe.start_price[idx].copy()
    since_split = np.full(n, 10_000)
    cumulative_shares = np.ones(n)
    split_choices = np.array([2.0, 3.0, 4.0, 5.0, 10.0])
    for t in range(days):
        active = (first < t) & (t <= last)  # an ex-date needs a previous close
        ref = price.copy()
        up = active & (price > threshold) & (since_split > 250) & (split_u[:, t] < 0.02)
        down = active & (price < 1.0) & (since_split > 60) & (split_u[:, t] < 0.05)
        for row in np.flatnonzero(up | down).tolist():
            ratio = (
                0.1
                if down[row]
                else float(split_choices[int(split_u[row, t] * 1000) % len(split_choices)])
            )
            ref[row] /= ratio
            cumulative_shares[row] *= ratio
            since_split[row] = 0
            actions.append((int(idx[row]), t, "split", ratio))
        payers = active & ~(up | down) & (quarterly > 0) & ((t - phase) % 63 == 0)
        for row in np.flatnonzero(payers).tolist():
            amount = max(0.01, round(float(quarterly[row] * ref[row]), 2))
            if amount < ref[row] * 0.5:
                ref[row] -= amount
                actions.append((int(idx[row]), t, "dividend", amount))
        since_split += 1
        price = np.maximum(ref * np.exp(returns[:, t]), 0.01)
        opened[:, t] = ref * np.exp(0.3 * total_sd[:, t] * gap_z[:, t])
        close[:, t] = price
        shares_factor[:, t] = cumulative_shares

    close = np.round(close, 2).clip(0.01, None)
    priced = [
        (
            i,
            t,
            kind,
            value,
            1.0 / value if kind == "split" else 1.0 - value / close[i - start, t - 1],
        )
        for i, t, kind, value in actions
    ]
    opened = np.round(opened, 2).clip(0.01, None)
    top = np.maximum(opened, close)
    bottom = np.minimum(opened, close)
    high = np.maximum(np.round(top * np.exp(0.45 * total_sd * range_z), 2), top)
    low_raw = bottom * np.exp(-0.45 * total_sd * low_z)
    low = np.minimum(np.round(low_raw, 2), bottom).clip(0.01, None)
    # Shares: the cap fixed for the last session over that session's close, restated for
    # every split before it (splits are the only change of share count modelled).
    rows_n = np.arange(n)
    final_shares = np.maximum(np.round(universe.final_cap[idx] / close[rows_n, last], -3), 10_000.0)
    shares = final_shares[:, None] * shares_factor / shares_factor[rows_n, last][:, None]
    move = np.abs(returns) / total_sd
    traded = shares * universe.turnover[idx][:, None] * np.exp(0.45 * move + 0.35 * vol_z - 0.2)
    # At least a round lot, at most half the company; a company that has split a
    # thousand-fold since had very few shares early on: then one share at least.
    most = np.maximum(np.floor(MAX_TURNOVER * shares), 1.0)
    volume = np.clip(np.round(traded, -2), np.minimum(ROUND_LOT, most), most).astype(np.int64)

    day_index = np.arange(days)
    mask = (day_index[None, :] >= first[:, None]) & (day_index[None, :] <= last[:, None])
    rows, cols = np.nonzero(mask)
    return SimulatedBars(
        security=(rows + start).astype(np.int32),
        day=cols.astype(np.int32),
        open=opened[rows, cols],
        high=high[rows, cols],
        low=low[rows, cols],
        close=close[rows, cols],
        volume=volume[rows, cols],
        actions=priced,
        shares_outstanding=final_shares.astype(np.int64),
    )


def expected_rows(universe: Universe) -> int:
    return int((universe.last_day - universe.first_day + 1).sum())


def listing_dates(universe: Universe) -> tuple[list[date], list[date | None]]:
    """Each security's first bar day, and its delisting day (None while listed)."""
    sessions = universe.spec.sessions
    listed = [_as_date(sessions[i]) for i in universe.first_day]
    delisted: list[date | None] = [
        _as_date(sessions[last]) if gone else None
        for last, gone in zip(universe.last_day, universe.delisted, strict=True)
    ]
    return listed, delisted


def _as_date(day: np.datetime64) -> date:
    return date.fromisoformat(str(day.astype("datetime64[D]")))


def _garch(
    rng: np.random.Generator,
    series: int,
    days: int,
    annual_vol: float,
    alpha: float,
    beta: float,
    dof: float,
) -> tuple[F64, F64]:
    long_run = annual_vol**2 / 252.0
    omega = long_run * (1.0 - alpha - beta)
    z = _unit_t(rng, dof, series * days).reshape(series, days)
    out = np.empty((series, days))
    variances = np.empty((series, days))
    var = np.full(series, long_run)
    prev = np.zeros(series)
    for t in range(days):
        var = omega + alpha * prev**2 + beta * var
        prev = np.sqrt(var) * z[:, t]
        out[:, t] = prev
        variances[:, t] = var
    return out, variances


def _unit_t(rng: np.random.Generator, dof: float, size: int) -> F64:
    """Student-t draws scaled to unit variance."""
    return np.asarray(rng.standard_t(dof, size) / math.sqrt(dof / (dof - 2.0)))


def _ticker(rng: np.random.Generator, taken: set[str]) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while True:
        length = int(rng.choice(5, p=[0.004, 0.03, 0.33, 0.60, 0.036])) + 1
        symbol = "".join(letters[int(k)] for k in rng.integers(0, 26, length))
        if length <= 4 and rng.random() < 0.006:
            symbol += "." + "AB"[int(rng.integers(2))]
        if symbol not in taken:
            return symbol


def _name(rng: np.random.Generator, industry: str) -> str:
    root = "".join(_SYLLABLES[int(k)] for k in rng.integers(0, len(_SYLLABLES), 2)).capitalize()
    word = industry.split(",")[0].split(" & ")[0].split(" (")[0]
    if rng.random() < 0.5:
        return f"{root} {_SUFFIXES[int(rng.integers(len(_SUFFIXES)))]}"
    return f"{root} {word} {_SUFFIXES[int(rng.integers(len(_SUFFIXES)))]}"

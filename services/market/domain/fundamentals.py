"""Fundamentals, point in time: from facts as filed to the metrics served (pure).

A fact is one figure of one period as one filing reported it. As of a day, only facts
filed on or before it count, and of a period reported several times (a 10-Q's figure
repeated as next year's comparative, a restatement) the latest such filing wins.

Flows (revenue, net income, EPS, dividends per share) are trailing twelve months: the
sum of the last four consecutive fiscal quarters (three-month periods), a fourth quarter
that only a 10-K reports being the year less its three quarters. Balance-sheet figures
(shares outstanding, equity, total debt) are the latest instant. Price ratios use the
price given: market cap = price x shares outstanding, P/E = price / TTM EPS (none when
EPS ≤ 0), P/B = market cap / equity (none when equity ≤ 0), dividend yield = TTM dividends
per share / price, revenue growth = TTM revenue / TTM revenue four quarters earlier - 1,
net margin = TTM net income / TTM revenue, debt/equity = total debt / equity.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta

METRICS = (
    "revenue",
    "net_income",
    "eps",
    "shares_outstanding",
    "dividends_per_share",
    "total_debt",
    "equity",
)
FLOWS = ("revenue", "net_income", "eps", "dividends_per_share")

METHODOLOGY = (
    "Point in time: only facts filed on or before as_of, the latest filing of each period."
    " TTM = the last four consecutive fiscal quarters (Q4 = fiscal year less Q1-Q3 when only"
    " the 10-K reports it). market_cap = price x shares_outstanding (latest instant);"
    " pe_ratio = price / TTM diluted EPS (null when EPS <= 0); pb_ratio = market_cap /"
    " stockholders' equity (null when equity <= 0); dividend_yield = TTM dividends per share"
    " / price; revenue_growth_yoy = TTM revenue / TTM revenue four quarters earlier - 1;"
    " net_margin = TTM net income / TTM revenue; debt_to_equity = total debt / equity."
)

QUARTER_DAYS = (80, 100)  # a fiscal quarter's length, start to end, in days
YEAR_DAYS = (350, 380)


@dataclass(frozen=True)
class Fact:
    metric: str
    start: date
    end: date
    filed: date
    value: float
    concept: str = ""
    fiscal_year: int | None = None
    fiscal_period: str | None = None
    form: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def visible(facts: list[Fact], as_of: date) -> list[Fact]:
    """What was known on ``as_of``: per (metric, period), the latest filing by then."""
    latest: dict[tuple[str, date, date], Fact] = {}
    for fact in facts:
        if fact.filed > as_of:
            continue
        key = (fact.metric, fact.start, fact.end)
        if key not in latest or fact.filed > latest[key].filed:
            latest[key] = fact
    return sorted(latest.values(), key=lambda f: (f.metric, f.end, f.start))


def _within(days: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= days <= bounds[1]


def quarters(facts: list[Fact]) -> dict[date, float]:
    """Quarter end → value, for one flow metric's visible facts (Q4s derived)."""
    found = {f.end: f.value for f in facts if _within(f.days, QUARTER_DAYS)}
    for year in (f for f in facts if _within(f.days, YEAR_DAYS)):
        if year.end in found:
            continue
        inside = [
            value
            for end, value in found.items()
            if year.start < end < year.end and (year.end - end).days <= 300
        ]
        if len(inside) == 3:
            found[year.end] = year.value - sum(inside)
    return dict(sorted(found.items()))


def ttm(by_end: dict[date, float], at: date | None = None) -> tuple[float, date] | None:
    """The sum of the four consecutive quarters ending at ``at`` (default: the latest)."""
    ends = [e for e in by_end if at is None or e <= at]
    if len(ends) < 4:
        return None
    last4 = ends[-4:]
    if at is not None and last4[-1] != at:
        return None
    steps = [(b - a).days for a, b in itertools.pairwise(last4)]
    if not all(_within(s, QUARTER_DAYS) for s in steps):
        return None
    return sum(by_end[e] for e in last4), last4[-1]


def latest_instant(facts: list[Fact]) -> tuple[float, date] | None:
    instants = [f for f in facts if f.days == 0]
    if not instants:
        return None
    last = max(instants, key=lambda f: (f.end, f.filed))
    return last.value, last.end


@dataclass(frozen=True)
class Figures:
    """The price-independent figures as of a day."""

    period_end: date | None
    revenue_ttm: float | None
    net_income_ttm: float | None
    eps_ttm: float | None
    dividends_ttm: float | None
    revenue_growth: float | None
    shares_outstanding: float | None
    equity: float | None
    total_debt: float | None


def figures(facts: list[Fact], as_of: date) -> Figures:
    known = visible(facts, as_of)
    by_metric = {m: [f for f in known if f.metric == m] for m in METRICS}
    flows = {m: quarters(by_metric[m]) for m in FLOWS}
    sums = {m: ttm(flows[m]) for m in FLOWS}
    revenue = sums["revenue"]
    growth = None
    if revenue is not None:
        earlier_end = max(
            (e for e in flows["revenue"] if _within((revenue[1] - e).days, YEAR_DAYS)),
            default=None,
        )
        earlier = ttm(flows["revenue"], earlier_end) if earlier_end else None
        if earlier is not None and earlier[0] > 0:
            growth = revenue[0] / earlier[0] - 1.0
    instants = {m: latest_instant(by_metric[m]) for m in ("shares_outstanding", "equity")}
    debt = latest_instant(by_metric["total_debt"])
    ends = [s[1] for s in sums.values() if s is not None]
    return Figures(
        period_end=max(ends) if ends else None,
        revenue_ttm=revenue[0] if revenue else None,
        net_income_ttm=sums["net_income"][0] if sums["net_income"] else None,
        eps_ttm=sums["eps"][0] if sums["eps"] else None,
        dividends_ttm=sums["dividends_per_share"][0] if sums["dividends_per_share"] else None,
        revenue_growth=growth,
        shares_outstanding=instants["shares_outstanding"][0]
        if instants["shares_outstanding"]
        else None,
        equity=instants["equity"][0] if instants["equity"] else None,
        total_debt=debt[0] if debt else None,
    )


def ratios(
    f: Figures, price: float | None, fallback_shares: float | None
) -> dict[str, float | None]:
    """The served metrics from ``f`` at ``price``."""
    shares = f.shares_outstanding or fallback_shares
    cap = price * shares if price is not None and shares else None

    def share(a: float | None, b: float | None, positive: bool = True) -> float | None:
        if a is None or b is None or b == 0 or (positive and b < 0):
            return None
        return a / b

    return {
        "market_cap": cap,
        "pe_ratio": share(price, f.eps_ttm) if f.eps_ttm and f.eps_ttm > 0 else None,
        "pb_ratio": share(cap, f.equity),
        "dividend_yield": share(f.dividends_ttm, price) if f.dividends_ttm is not None else None,
        "revenue_growth_yoy": f.revenue_growth,
        "net_margin": share(f.net_income_ttm, f.revenue_ttm),
        "debt_to_equity": share(f.total_debt, f.equity),
    }


def simulated_facts(
    *,
    shares: float,
    price: float,
    last_session: date,
    pe: float,
    margin: float,
    pb: float,
    leverage: float,
    growth: float,
    dividend_yield: float,
) -> list[Fact]:
    """Eight fiscal quarters of facts for a simulated company, consistent with its price:
    shares x ``price`` is its market cap, TTM EPS = ``price / pe``, equity = market cap /
    ``pb``, each filed 40 days after its quarter ends (only those filed by
    ``last_session``)."""
    cap = shares * price
    eps_ttm = price / pe
    quarter_ends = _quarter_ends(last_session, 9)
    facts: list[Fact] = []
    quarterly_growth = (1.0 + growth) ** 0.25
    for k, end in enumerate(quarter_ends):
        scale = quarterly_growth ** (k - len(quarter_ends) + 1)  # the latest quarter = 1
        filed = end + timedelta(days=40)
        if filed > last_session:
            continue
        start = _quarter_start(end)
        eps = eps_ttm / 4 * scale
        net = eps * shares
        for metric, value in (
            ("eps", eps),
            ("net_income", net),
            ("revenue", net / margin),
            ("dividends_per_share", price * dividend_yield / 4),
        ):
            facts.append(Fact(metric, start, end, filed, value, "simulated", form="10-Q"))
        for metric, value in (
            ("shares_outstanding", shares),
            ("equity", cap / pb * scale),
            ("total_debt", cap / pb * scale * leverage),
        ):
            facts.append(Fact(metric, end, end, filed, value, "simulated", form="10-Q"))
    return facts


def _quarter_ends(last: date, count: int) -> list[date]:
    ends = []
    year, quarter = last.year, (last.month - 1) // 3  # the quarter before last's
    for _ in range(count):
        if quarter == 0:
            year, quarter = year - 1, 4
        month = quarter * 3
        following = date(year + (month == 12), month % 12 + 1, 1)
        ends.append(following - timedelta(days=1))
        quarter -= 1
    return sorted(ends)


def _quarter_start(end: date) -> date:
    month = end.month - 2
    return date(end.year, month, 1)

"""Returns over time: the daily value series, the time-weighted return (TWR) and the
money-weighted return (MWR, as XIRR), volatility and maximum drawdown. Pure: no I/O.

Conventions (docs/portfolio.md, "Performance"):

- A day's **value** is cash plus every open position at its last close on or before that
  day (a ticker without a close yet is valued at its last trade price), after every
  ledger entry of that day (UTC date). Values are money (``Decimal``, 4 places).
- **External flows** are DEPOSIT (+) and WITHDRAWAL (-). Trades, dividends and fees
  happen inside the portfolio: they are return, not flow.
- A flow counts at the **start of its day**: ``r_d = V_d / (V_{d-1} + F_d) - 1``; a day
  with nothing invested (``V_{d-1} + F_d <= 0``) has no return.
- **TWR** of a period: ``prod(1 + r_d) - 1`` over the days after the period's base day
  (the last day on or before its start) up to its end; annualised
  ``(1 + R) ** (365 / days) - 1`` only for periods of a year or more.
- **MWR**: XIRR, the annual rate ``r`` with ``sum(cf_i / (1 + r) ** (days_i / 365)) = 0``
  (actual/365, as pyxirr and spreadsheets), from the investor's side: ``-V(base)`` on the
  base day, ``-deposit`` / ``+withdrawal`` on their days, ``+V(end)`` on the end day.
  Also given over the period: ``(1 + r) ** (days / 365) - 1``.
- **Benchmark**: market's universe index, total-return variant. Its return on a day of
  the series is the change of its level from the previous day of the series to this one,
  each day taking the index's last level on or before it (as positions take their last
  close); a period's benchmark return chains those over the days the portfolio had a
  return, and the **excess return** is the period's TWR minus it. **Beta**: covariance
  of the daily returns with the benchmark's over their variance (empyrical's ``beta``).
- **Volatility**: sample standard deviation of the daily returns x sqrt(252);
  **maximum drawdown**: the deepest fall of the TWR index from a previous peak, the
  index starting at 1 (both as empyrical computes them).

Returns are ratios, not money: they are computed in binary floating point and reported
rounded to 8 decimal places.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal
from enum import StrEnum

from services.portfolio.domain.ledger import (
    TRADES,
    ZERO,
    Entry,
    Kind,
    Ledger,
    active,
    apply,
    money,
    ordered,
)

TRADING_DAYS = 252
FLOWS = frozenset({Kind.DEPOSIT, Kind.WITHDRAWAL})


class Period(StrEnum):
    M1 = "1M"
    M3 = "3M"
    YTD = "YTD"
    Y1 = "1Y"
    INCEPTION = "INCEPTION"


@dataclass(frozen=True, slots=True)
class DayValue:
    day: date
    value: Decimal
    cash: Decimal
    flow: Decimal  # net external flow of the day (deposits - withdrawals)


def entry_day(entry: Entry) -> date:
    return entry.executed_at.astimezone(UTC).date()


def value_series(
    entries: Iterable[Entry],
    closes: Mapping[str, Sequence[tuple[date, Decimal]]],
    end: date,
) -> list[DayValue]:
    """The portfolio's value at the end of each day from its first entry to ``end``:
    every day market has a close for any ticker, every day with an entry, and ``end``.
    ``closes`` are each ticker's unadjusted daily closes, oldest first (the ledger's
    SPLIT entries change quantities on their day, as raw closes change price)."""
    live = [e for e in ordered(active(entries)) if entry_day(e) <= end]
    if not live:
        return []
    first = entry_day(live[0])
    days = sorted(
        {d for series in closes.values() for d, _ in series if first <= d <= end}
        | {entry_day(e) for e in live}
        | {end}
    )
    close_days = {t: [d for d, _ in s] for t, s in closes.items()}
    ledger = Ledger()
    last_trade: dict[str, Decimal] = {}
    out: list[DayValue] = []
    i = 0
    for day in days:
        flow = ZERO
        while i < len(live) and entry_day(live[i]) <= day:
            entry = live[i]
            apply(ledger, entry)
            if entry.kind in FLOWS:
                flow += entry.amount
            elif entry.kind in TRADES and entry.ticker and entry.price is not None:
                last_trade[entry.ticker] = entry.price
            elif entry.kind is Kind.SPLIT and entry.ticker in last_trade:
                assert entry.ticker and entry.split_to and entry.split_from
                last_trade[entry.ticker] = (
                    last_trade[entry.ticker] * entry.split_from / entry.split_to
                )
            i += 1
        held = ZERO
        for position in ledger.positions.values():
            quantity = position.quantity
            if quantity == 0:
                continue
            known = close_days.get(position.ticker, [])
            at = bisect_right(known, day)
            price = closes[position.ticker][at - 1][1] if at else last_trade[position.ticker]
            held += money(quantity * price)
        out.append(DayValue(day, ledger.cash + held, ledger.cash, flow))
    return out


def daily_returns(series: Sequence[DayValue]) -> list[float | None]:
    """``r_d`` for each day of ``series`` (None: nothing invested that day); the first
    day's base is nothing, so its return is its value against its own flow."""
    out: list[float | None] = []
    previous = ZERO
    for point in series:
        base = previous + point.flow
        out.append(float(point.value / base) - 1.0 if base > 0 else None)
        previous = point.value
    return out


def twr_index(returns: Sequence[float | None]) -> list[float]:
    """The growth of 1 invested at inception, day by day (for charts)."""
    index, out = 1.0, []
    for r in returns:
        if r is not None:
            index *= 1.0 + r
        out.append(index)
    return out


def base_day(period: Period, end: date) -> date | None:
    """The day whose close a period's return starts from (None: since inception)."""
    if period is Period.INCEPTION:
        return None
    if period is Period.YTD:
        return date(end.year - 1, 12, 31)
    months = {Period.M1: 1, Period.M3: 3, Period.Y1: 12}[period]
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    month += 1
    # The same day of the month, or the month's last day (31 March - 1M = 28/29 Feb).
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(end.day, last))


@dataclass(frozen=True, slots=True)
class PeriodReturn:
    period: Period
    start: date  # the base day (inception: the first entry's day)
    end: date
    available: bool
    note: str | None = None
    start_value: Decimal = ZERO
    end_value: Decimal = ZERO
    net_flows: Decimal = ZERO
    twr: float | None = None
    twr_annualised: float | None = None
    mwr: float | None = None  # XIRR, annual
    mwr_period: float | None = None
    benchmark: float | None = None  # the index's return over the same days
    excess: float | None = None  # twr - benchmark


@dataclass(frozen=True, slots=True)
class IndexLevels:
    """An index's daily levels, oldest first."""

    days: Sequence[date]
    levels: Sequence[float]

    def on_or_before(self, day: date) -> float | None:
        at = bisect_right(self.days, day)
        return self.levels[at - 1] if at else None


def benchmark_returns(series: Sequence[DayValue], index: IndexLevels) -> list[float | None]:
    """The index's return on each day of ``series``: from its level on the previous day
    of the series (the first day: the day before it) to its level on the day, each the
    last level on or before that day. None where the index has no level yet."""
    out: list[float | None] = []
    previous = series[0].day - timedelta(days=1) if series else None
    for point in series:
        assert previous is not None
        before, now = index.on_or_before(previous), index.on_or_before(point.day)
        out.append(now / before - 1.0 if before and now is not None else None)
        previous = point.day
    return out


def beta(returns: Sequence[float | None], benchmark: Sequence[float | None]) -> float | None:
    """Covariance of the daily returns with the benchmark's over the benchmark's
    variance, over the days both have one (None: fewer than two, or a flat benchmark)."""
    pairs = [
        (r, b) for r, b in zip(returns, benchmark, strict=True) if r is not None and b is not None
    ]
    if len(pairs) < 2:
        return None
    xs = [b for _, b in pairs]
    ys = [r for r, _ in pairs]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    variance = sum((x - mean_x) ** 2 for x in xs)
    if variance == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / variance


def period_return(
    series: Sequence[DayValue],
    period: Period,
    benchmark: Sequence[float | None] | None = None,
) -> PeriodReturn:
    """TWR and MWR of ``period`` ending on the series' last day, and against the
    ``benchmark``'s daily returns (:func:`benchmark_returns`) when given."""
    end = series[-1].day
    wanted = base_day(period, end)
    if wanted is None:
        # Since inception: from the first day's opening, when its flows came in.
        base_index, start, start_value = -1, series[0].day, ZERO
    else:
        base_index = bisect_right([p.day for p in series], wanted) - 1
        if base_index < 0:
            return PeriodReturn(
                period, wanted, end, False, note="the portfolio is younger than the period"
            )
        start, start_value = wanted, series[base_index].value
    window = series[base_index + 1 :]
    # Each day's return is against the day before, so the window's first day grows from
    # the base day's value (inception: from nothing but its own flow).
    returns = daily_returns(series)[base_index + 1 :]
    days = (end - start).days
    invested = [r for r in returns if r is not None]
    twr = math.prod(1.0 + r for r in invested) - 1.0 if invested else None
    against = None
    if benchmark is not None and twr is not None:
        paired = [
            b for r, b in zip(returns, benchmark[base_index + 1 :], strict=True) if r is not None
        ]
        if all(b is not None for b in paired):
            against = math.prod(1.0 + b for b in paired if b is not None) - 1.0
    flows: list[tuple[date, float]] = []
    if start_value:
        flows.append((start, -float(start_value)))
    flows += [(p.day, -float(p.flow)) for p in window if p.flow]
    end_value = series[-1].value
    flows.append((end, float(end_value)))
    rate = xirr(flows)
    return PeriodReturn(
        period=period,
        start=start,
        end=end,
        available=True,
        note=None if invested else "nothing was invested in the period",
        start_value=start_value,
        end_value=end_value,
        net_flows=sum((p.flow for p in window), ZERO),
        twr=twr,
        twr_annualised=(1.0 + twr) ** (365.0 / days) - 1.0
        if twr is not None and days >= 365
        else None,
        mwr=rate,
        mwr_period=(1.0 + rate) ** (days / 365.0) - 1.0 if rate is not None else None,
        benchmark=against,
        excess=twr - against if twr is not None and against is not None else None,
    )


def xirr(flows: Sequence[tuple[date, float]]) -> float | None:
    """The annual rate that discounts ``flows`` to zero (actual/365); None when there is
    none (all flows of one sign, or no money at all).

    Flows that change sign more than once (deposits, withdrawals, deposits...) can have
    several such rates; the one nearest to zero is the answer (the others are artefacts
    of the polynomial, such as -90 % or +200 % a year for an ordinary portfolio). It is
    found by scanning a grid of rates for the sign change nearest to zero, then bisecting
    it to machine precision -- slower than Newton's method alone, which may converge to
    any root or none, but certain."""
    if not flows:
        return None
    t0 = min(d for d, _ in flows)
    points = [((d - t0).days / 365.0, amount) for d, amount in flows if amount]
    if not any(a > 0 for _, a in points) or not any(a < 0 for _, a in points):
        return None

    def npv(rate: float) -> float:
        try:
            return float(sum(a / (1.0 + rate) ** t for t, a in points))
        except OverflowError:
            return math.inf if points[-1][1] > 0 else -math.inf

    values = [(rate, npv(rate)) for rate in _GRID]
    brackets = [
        (low, high)
        for (low, f_low), (high, f_high) in itertools.pairwise(values)
        if f_low == 0 or f_low * f_high < 0
    ]
    if not brackets:
        return None
    low, high = min(brackets, key=lambda b: min(abs(b[0]), abs(b[1])))
    f_low = npv(low)
    if f_low == 0:
        return low
    for _ in range(200):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        f_middle = npv(middle)
        if f_middle == 0:
            return middle
        if (f_middle < 0) == (f_low < 0):
            low, f_low = middle, f_middle
        else:
            high = middle
    return (low + high) / 2.0


# Rates from -100 % (exclusive) to +10^8 % a year, dense near zero where portfolios live.
_GRID: tuple[float, ...] = tuple(
    sorted(
        {-0.999999, -0.9999, -0.999, -0.99}
        | {round(-0.98 + 0.02 * i, 2) for i in range(99)}  # -0.98 .. 0.98
        | {10.0 ** (k / 4.0) for k in range(33)}  # 1 .. 10^8
    )
)


def volatility(returns: Sequence[float | None]) -> float | None:
    """Annualised volatility of the daily returns (sample standard deviation x sqrt 252)."""
    values = [r for r in returns if r is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    variance = sum((r - mean) ** 2 for r in values) / (len(values) - 1)
    return math.sqrt(variance) * math.sqrt(TRADING_DAYS)


def max_drawdown(returns: Sequence[float | None]) -> float | None:
    """The deepest fall of the TWR index from a previous peak (<= 0), the index starting
    at 1 before the first return."""
    values = [r for r in returns if r is not None]
    if not values:
        return None
    index = peak = 1.0
    deepest = 0.0
    for r in values:
        index *= 1.0 + r
        peak = max(peak, index)
        deepest = min(deepest, index / peak - 1.0)
    return deepest

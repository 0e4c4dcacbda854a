"""Returns over time (no database): hand-computed cases, flows on the first and last day
included, and the figures against pyxirr (XIRR) and empyrical-reloaded (cumulative
return, volatility, maximum drawdown) on the same series, as dev-only references."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.portfolio.domain import Entry, Kind, trade_amount
from services.portfolio.domain.performance import (
    DayValue,
    IndexLevels,
    Period,
    base_day,
    benchmark_returns,
    beta,
    daily_returns,
    max_drawdown,
    period_return,
    value_series,
    volatility,
    xirr,
)

D = Decimal


class Book:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, day: date, kind: Kind, amount: str = "0", **fields: object) -> None:
        self.entries.append(
            Entry(
                id=uuid.uuid4(),
                seq=len(self.entries) + 1,
                kind=kind,
                executed_at=datetime(day.year, day.month, day.day, 15, tzinfo=UTC),
                amount=D(amount),
                **fields,  # type: ignore[arg-type]
            )
        )

    def trade(self, day: date, kind: Kind, ticker: str, quantity: str, price: str) -> None:
        q, p = D(quantity), D(price)
        amount = trade_amount(kind, q, p, D(0))
        self.add(day, kind, str(amount), ticker=ticker, quantity=q, price=p)


def closes(start: date, prices: list[str]) -> list[tuple[date, Decimal]]:
    return [(start + timedelta(days=i), D(p)) for i, p in enumerate(prices)]


def flows_on_first_and_last_day() -> tuple[Book, dict[str, list[tuple[date, Decimal]]]]:
    """Day 1: deposit 1000, buy 10 @ 100. Day 3: deposit 500. Day 4 (last): withdraw 200."""
    d1 = date(2025, 1, 2)
    book = Book()
    book.add(d1, Kind.DEPOSIT, "1000")
    book.trade(d1, Kind.BUY, "AAA", "10", "100")
    book.add(d1 + timedelta(days=2), Kind.DEPOSIT, "500")
    book.add(d1 + timedelta(days=3), Kind.WITHDRAWAL, "-200")
    return book, {"AAA": closes(d1, ["100", "110", "99", "105"])}


def test_the_value_series_and_daily_returns_by_hand() -> None:
    book, prices = flows_on_first_and_last_day()
    series = value_series(book.entries, prices, date(2025, 1, 5))
    assert [(p.value, p.flow) for p in series] == [
        (D("1000"), D("1000")),
        (D("1100"), D("0")),
        (D("1490"), D("500")),  # 500 cash + 10 x 99
        (D("1350"), D("-200")),  # 300 cash + 10 x 105
    ]
    returns = daily_returns(series)
    expected = [0.0, 0.1, 1490 / 1600 - 1, 1350 / 1290 - 1]
    assert returns == pytest.approx(expected, abs=1e-15)


def test_twr_and_mwr_with_flows_on_the_first_and_last_day() -> None:
    book, prices = flows_on_first_and_last_day()
    series = value_series(book.entries, prices, date(2025, 1, 5))
    result = period_return(series, Period.INCEPTION)
    assert result.twr == pytest.approx(1.1 * (1490 / 1600) * (1350 / 1290) - 1, abs=1e-14)
    assert result.net_flows == D("1300") and result.end_value == D("1350")
    # MWR: -1000 on day 0, -500 on day 2, +200 +1350 on day 3; the rate zeroes the NPV.
    rate = result.mwr
    assert rate is not None
    npv = -1000 - 500 / (1 + rate) ** (2 / 365) + 1550 / (1 + rate) ** (3 / 365)
    assert npv == pytest.approx(0, abs=1e-9)


def test_a_year_at_ten_percent_is_ten_percent_both_ways() -> None:
    start = date(2023, 1, 2)
    book = Book()
    book.add(start, Kind.DEPOSIT, "1000")
    book.trade(start, Kind.BUY, "AAA", "10", "100")
    end = start + timedelta(days=365)
    series = value_series(book.entries, {"AAA": [(start, D(100)), (end, D(110))]}, end)
    result = period_return(series, Period.INCEPTION)
    assert result.twr == pytest.approx(0.1, abs=1e-15)
    assert result.twr_annualised == pytest.approx(0.1, abs=1e-15)
    assert result.mwr == pytest.approx(0.1, abs=1e-12)
    assert result.mwr_period == pytest.approx(0.1, abs=1e-12)


def test_twr_ignores_the_timing_of_flows_that_mwr_rewards() -> None:
    """Price doubles then halves: TWR is 0 whatever the flows; depositing at the top
    makes the investor's money-weighted return negative."""
    d = date(2024, 3, 1)
    book = Book()
    book.add(d, Kind.DEPOSIT, "100")
    book.trade(d, Kind.BUY, "AAA", "1", "100")
    book.add(d + timedelta(days=30), Kind.DEPOSIT, "200")
    book.trade(d + timedelta(days=30), Kind.BUY, "AAA", "1", "200")
    prices = {
        "AAA": [
            (d, D(100)),
            (d + timedelta(days=29), D(200)),  # the close before the second deposit
            (d + timedelta(days=30), D(200)),
            (d + timedelta(days=60), D(100)),
        ]
    }
    series = value_series(book.entries, prices, d + timedelta(days=60))
    result = period_return(series, Period.INCEPTION)
    assert result.twr == pytest.approx(0.0, abs=1e-15)
    assert result.mwr is not None and result.mwr < -0.9  # lost a third in a month


def test_periods_start_on_their_base_day() -> None:
    assert base_day(Period.M1, date(2025, 3, 31)) == date(2025, 2, 28)
    assert base_day(Period.M3, date(2025, 5, 31)) == date(2025, 2, 28)
    assert base_day(Period.YTD, date(2025, 6, 1)) == date(2024, 12, 31)
    assert base_day(Period.Y1, date(2024, 2, 29)) == date(2023, 2, 28)
    assert base_day(Period.INCEPTION, date(2025, 1, 1)) is None


def test_a_period_longer_than_the_history_is_unavailable() -> None:
    book, prices = flows_on_first_and_last_day()
    series = value_series(book.entries, prices, date(2025, 1, 5))
    result = period_return(series, Period.M1)
    assert not result.available and result.note and result.twr is None


def test_a_period_starts_from_the_base_days_value() -> None:
    start = date(2025, 1, 1)
    prices = [str(100 + i) for i in range(61)]  # +1 a day
    book = Book()
    book.add(start, Kind.DEPOSIT, "1000")
    book.trade(start, Kind.BUY, "AAA", "10", "100")
    series = value_series(book.entries, {"AAA": closes(start, prices)}, start + timedelta(days=60))
    result = period_return(series, Period.M1)  # 2025-03-02 back to 2025-02-02 (day 32)
    assert result.start == date(2025, 2, 2) and result.start_value == D("1320")
    assert result.twr == pytest.approx(1600 / 1320 - 1, abs=1e-14)


def test_a_split_does_not_move_the_value() -> None:
    d = date(2025, 1, 6)
    book = Book()
    book.add(d, Kind.DEPOSIT, "1000")
    book.trade(d, Kind.BUY, "AAA", "10", "100")
    book.add(d + timedelta(days=1), Kind.SPLIT, ticker="AAA", split_to=2, split_from=1)
    prices = {"AAA": closes(d, ["100", "50", "50"])}  # unadjusted: halves on the split day
    series = value_series(book.entries, prices, d + timedelta(days=2))
    assert [p.value for p in series] == [D("1000")] * 3


# --- against the references -----------------------------------------------------------------


def simulated(seed: int) -> list[DayValue]:
    """Two years of a portfolio trading three random-walk stocks with random flows."""
    rng = random.Random(seed)
    start = date(2022, 1, 3)
    days = [
        start + timedelta(days=i) for i in range(730) if (start + timedelta(days=i)).weekday() < 5
    ]
    walk = {t: [D(str(round(rng.uniform(20, 200), 2)))] for t in ("AAA", "BBB", "CCC")}
    for series in walk.values():
        for _ in days[1:]:
            series.append(
                max(
                    D("1"),
                    (series[-1] * D(str(round(rng.gauss(1.0004, 0.02), 4)))).quantize(D("0.01")),
                )
            )
    book = Book()
    book.add(start, Kind.DEPOSIT, "10000")
    held = {t: D(0) for t in walk}
    cash = D("10000")
    for i, day in enumerate(days):
        if rng.random() < 0.03:
            book.add(day, Kind.DEPOSIT, "2500")
            cash += 2500
        ticker = rng.choice(list(walk))
        price = walk[ticker][i]
        if rng.random() < 0.1 and cash > price:
            quantity = D(rng.randint(1, max(1, int(cash / price / 3))))
            if quantity * price <= cash:
                book.trade(day, Kind.BUY, ticker, str(quantity), str(price))
                held[ticker] += quantity
                cash -= quantity * price
        elif rng.random() < 0.05 and held[ticker] > 0:
            quantity = D(rng.randint(1, int(held[ticker])))
            book.trade(day, Kind.SELL, ticker, str(quantity), str(price))
            held[ticker] -= quantity
            cash += quantity * price
        if rng.random() < 0.01 and cash > 1000:
            book.add(day, Kind.WITHDRAWAL, "-1000")
            cash -= 1000
    prices = {t: list(zip(days, series, strict=True)) for t, series in walk.items()}
    return value_series(book.entries, prices, days[-1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_xirr_agrees_with_pyxirr(seed: int) -> None:
    pyxirr = pytest.importorskip("pyxirr")
    series = simulated(seed)
    for period in Period:
        result = period_return(series, period)
        flows = [(result.start, -float(result.start_value))] if result.start_value else []
        # The flows after the base day (since inception: from the first day on).
        start_index = (
            0
            if period is Period.INCEPTION
            else next(i for i, p in enumerate(series) if p.day > result.start)
        )
        flows += [(p.day, -float(p.flow)) for p in series[start_index:] if p.flow]
        flows.append((result.end, float(result.end_value)))
        reference = pyxirr.xirr([d for d, _ in flows], [a for _, a in flows])
        assert result.mwr == pytest.approx(reference, rel=1e-7, abs=1e-9), period


def test_xirr_agrees_with_pyxirr_on_random_flows() -> None:
    pyxirr = pytest.importorskip("pyxirr")
    rng = random.Random(7)
    for _ in range(200):
        start = date(2020, 1, 1)
        flows = [(start, -rng.uniform(100, 10_000))]
        for _ in range(rng.randint(0, 12)):
            flows.append((start + timedelta(days=rng.randint(1, 1500)), rng.uniform(-5000, 3000)))
        flows.append((start + timedelta(days=rng.randint(1501, 2000)), rng.uniform(1, 20_000)))
        ours = xirr(flows)
        reference = pyxirr.xirr([d for d, _ in flows], [a for _, a in flows])
        if reference is None:
            continue
        assert ours == pytest.approx(reference, rel=1e-7, abs=1e-9), flows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_returns_volatility_and_drawdown_agree_with_empyrical(seed: int) -> None:
    empyrical = pytest.importorskip("empyrical")
    np = pytest.importorskip("numpy")
    series = simulated(seed)
    returns = daily_returns(series)
    invested = np.array([r for r in returns if r is not None])
    result = period_return(series, Period.INCEPTION)
    assert result.twr == pytest.approx(empyrical.cum_returns_final(invested), rel=1e-10)
    assert volatility(returns) == pytest.approx(empyrical.annual_volatility(invested), rel=1e-10)
    assert max_drawdown(returns) == pytest.approx(empyrical.max_drawdown(invested), rel=1e-10)


def test_the_benchmark_by_hand_on_the_series_days() -> None:
    """The index takes its last level on or before each day (it has none on Saturday);
    the first day's return is from the level before it."""
    monday = date(2025, 1, 6)
    series = [
        DayValue(monday, D("1000"), D("1000"), D("1000")),
        DayValue(monday + timedelta(days=1), D("1100"), D("0"), D("0")),
        DayValue(monday + timedelta(days=5), D("990"), D("0"), D("0")),  # Saturday
        DayValue(monday + timedelta(days=7), D("1089"), D("0"), D("0")),
    ]
    offsets = (-3, 0, 1, 4, 7)
    index = IndexLevels(
        [monday + timedelta(days=d) for d in offsets], [2000.0, 2020.0, 2121.0, 2100.0, 2205.0]
    )
    bench = benchmark_returns(series, index)
    assert bench == pytest.approx([0.01, 0.05, 2100 / 2121 - 1, 0.05])
    result = period_return(series, Period.INCEPTION, bench)
    assert result.twr == pytest.approx(0.089)  # 1000 -> 1089, the first day flat
    assert result.benchmark == pytest.approx(2205 / 2000 - 1)
    assert result.excess == pytest.approx(0.089 - 0.1025)
    returns = daily_returns(series)
    ys, xs = [0.0, 0.1, -0.1, 0.1], [0.01, 0.05, 2100 / 2121 - 1, 0.05]
    my, mx = sum(ys) / 4, sum(xs) / 4
    expected = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    assert beta(returns, bench) == pytest.approx(expected)


def test_without_an_index_level_the_benchmark_is_none_not_zero() -> None:
    monday = date(2025, 1, 6)
    series = [
        DayValue(monday, D("1000"), D("1000"), D("1000")),
        DayValue(monday + timedelta(days=1), D("1100"), D("0"), D("0")),
        DayValue(monday + timedelta(days=2), D("1210"), D("0"), D("0")),
    ]
    index = IndexLevels([monday + timedelta(days=1), monday + timedelta(days=2)], [100.0, 90.0])
    bench = benchmark_returns(series, index)
    assert bench == [None, None, pytest.approx(-0.1)]
    inception = period_return(series, Period.INCEPTION, bench)
    assert inception.twr == pytest.approx(0.21) and inception.benchmark is None
    assert inception.excess is None
    assert beta(daily_returns(series), bench) is None  # one pair only
    assert period_return(series, Period.INCEPTION).benchmark is None  # no index asked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_beta_and_excess_return_agree_with_empyrical(seed: int) -> None:
    empyrical = pytest.importorskip("empyrical")
    np = pytest.importorskip("numpy")
    series = simulated(seed)
    rng = random.Random(seed)
    # The index: weekday levels from a week before the portfolio, moving with it in part.
    days = [series[0].day - timedelta(days=7 - i) for i in range(7)] + [p.day for p in series]
    returns = daily_returns(series)
    moves = [rng.gauss(0.0003, 0.01) for _ in range(7)] + [
        0.5 * (r or 0.0) + rng.gauss(0.0, 0.008) for r in returns
    ]
    levels = list(1000.0 * np.cumprod([1.0 + m for m in moves]))
    bench = benchmark_returns(series, IndexLevels(days, levels))
    result = period_return(series, Period.INCEPTION, bench)
    ours = np.array([r for r in returns if r is not None])
    theirs = np.array([b for r, b in zip(returns, bench, strict=True) if r is not None])
    assert beta(returns, bench) == pytest.approx(empyrical.beta(ours, theirs), rel=1e-9)
    assert result.benchmark == pytest.approx(empyrical.cum_returns_final(theirs), rel=1e-10)
    assert result.excess == pytest.approx(
        empyrical.cum_returns_final(ours) - empyrical.cum_returns_final(theirs), rel=1e-9
    )
    one_year = period_return(series, Period.Y1, bench)
    assert one_year.benchmark is not None and one_year.excess is not None

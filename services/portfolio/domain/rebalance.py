"""Rebalancing towards target weights under constraints: the trades that bring a
portfolio to its targets, and what it looks like after them. Pure: no I/O.

Rules (docs/portfolio.md, "Rebalancing"):

1. The total value ``V`` is cash plus every position at its price. Weights are fractions
   of ``V``; whatever the targets leave is the cash target.
2. Excluded tickers are neither bought nor sold; their value stays where it is. The
   rest is *investable*: ``V x (1 - cash_buffer) - excluded value``. When the targets
   ask for more than that, they are scaled down proportionally to fit.
3. A held ticker without a target is sold. A position whose weight is within
   ``drift_band`` of its target does not trade.
4. Quantities are rounded towards zero: to whole shares, or to 6 decimal places when
   fractional shares are allowed, so a trade never overshoots its target.
5. A trade worth less than ``min_trade_value``, or no more than its fee, is dropped.
6. Buys never take cash below the buffer (``V x cash_buffer``) after the sells' proceeds
   and every trade's fee; when they would, they are scaled down together.
7. One-way turnover, ``sum(|trade value|) / 2V``, is at most ``max_turnover``: beyond it
   every trade is scaled down by the same factor (a partial step towards the targets).

Money is rounded half-even to 4 places; weights are reported with 6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from services.portfolio.domain.ledger import MONEY, WEIGHT, ZERO, money

WHOLE = Decimal(1)
FRACTION = Decimal("0.000001")
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Constraints:
    cash_buffer: Decimal = ZERO  # fraction of V kept in cash
    min_trade_value: Decimal = ZERO
    fractional: bool = False
    drift_band: Decimal = ZERO  # absolute weight difference that does not trade
    max_turnover: Decimal | None = None  # one-way, fraction of V
    exclude: frozenset[str] = frozenset()
    fee_per_trade: Decimal = ZERO  # recorded as each trade's fee when applied
    cost_bps: Decimal = ZERO  # estimated spread/slippage, reported only


@dataclass(frozen=True, slots=True)
class Trade:
    ticker: str
    side: str  # BUY / SELL
    quantity: Decimal
    price: Decimal
    value: Decimal  # quantity x price, money
    fee: Decimal


@dataclass(frozen=True, slots=True)
class Holding:
    ticker: str
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Line:
    """One ticker before and after the proposal."""

    ticker: str
    target: Decimal | None  # None: excluded
    weight_before: Decimal
    weight_after: Decimal
    quantity_before: Decimal
    quantity_after: Decimal
    # How far weight_after may be from target when no trade was scaled down: the drift
    # band, or one rounding step plus the smallest trade worth making (and money's
    # rounding), whichever is larger.
    tolerance: Decimal | None


@dataclass(frozen=True, slots=True)
class Proposal:
    trades: list[Trade]
    lines: list[Line]
    total_value: Decimal
    cash_before: Decimal
    cash_after: Decimal
    cash_weight_after: Decimal
    turnover: Decimal
    estimated_cost: Decimal  # fees + the estimated spread
    scaled_targets: bool  # the targets asked for more than the investable value
    notes: list[str] = field(default_factory=list)


class RebalanceRejected(Exception):
    def __init__(self, reason: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


def equal_weights(tickers: Sequence[str]) -> dict[str, Decimal]:
    """Equal targets summing to 1 (the buffer and exclusions are applied afterwards)."""
    unique = sorted(set(tickers))
    if not unique:
        raise RebalanceRejected("NO_TARGETS", "Equal weight needs at least one ticker.")
    share = ONE / len(unique)
    return dict.fromkeys(unique, share)


def _weight(value: Decimal, total: Decimal) -> Decimal:
    return (value / total).quantize(WEIGHT) if total > 0 else ZERO


def propose(
    holdings: Sequence[Holding],
    cash: Decimal,
    prices: Mapping[str, Decimal],
    targets: Mapping[str, Decimal],
    constraints: Constraints,
) -> Proposal:
    """The trades that move ``holdings`` towards ``targets`` within ``constraints``.
    ``prices`` must cover every holding and every target."""
    c = constraints
    if any(w < 0 for w in targets.values()) or sum(targets.values(), ZERO) > ONE:
        raise RebalanceRejected(
            "INVALID_TARGETS", "Target weights must be non-negative and sum to at most 1."
        )
    excluded_targets = sorted(set(targets) & c.exclude)
    if excluded_targets:
        raise RebalanceRejected(
            "EXCLUDED_TARGET",
            "A ticker cannot be both a target and excluded.",
            tickers=excluded_targets,
        )
    held = {h.ticker: h.quantity for h in holdings if h.quantity > 0}
    values = {t: money(q * prices[t]) for t, q in held.items()}
    total = cash + sum(values.values(), ZERO)
    if total <= 0:
        raise RebalanceRejected("EMPTY_PORTFOLIO", "There is nothing to rebalance.")
    excluded_value = sum((v for t, v in values.items() if t in c.exclude), ZERO)
    investable = total * (ONE - c.cash_buffer) - excluded_value
    wanted = sum(targets.values(), ZERO) * total
    scaled = wanted > investable
    scale = (investable / wanted if wanted > 0 else ZERO) if scaled else ONE
    scale = max(scale, ZERO)
    goal = {t: w * scale for t, w in targets.items()}
    notes: list[str] = []
    if scaled:
        notes.append(
            "The targets were scaled down to fit the value left after the cash buffer"
            " and the excluded positions."
        )

    step = FRACTION if c.fractional else WHOLE
    raw: dict[str, Decimal] = {}  # signed quantity change
    for ticker in sorted(set(held) | set(goal)):
        if ticker in c.exclude:
            continue
        current = values.get(ticker, ZERO)
        target = goal.get(ticker, ZERO)
        if abs(current / total - target) < c.drift_band:
            continue
        if target == 0:
            raw[ticker] = -held.get(ticker, ZERO)  # out of the targets: sell it all
        else:
            delta = (target * total - current) / prices[ticker]
            raw[ticker] = max(delta, -held.get(ticker, ZERO))  # never sell what is not held

    def round_trades(factor: Decimal, buy_factor: Decimal) -> list[Trade]:
        trades = []
        for ticker, delta in raw.items():
            delta = delta * factor * (buy_factor if delta > 0 else ONE)
            # Selling a whole position sells all of it, a fraction of a share included.
            selling_all = delta < 0 and -delta == held.get(ticker, ZERO)
            quantity = -delta if selling_all else abs(delta).quantize(step, rounding=ROUND_DOWN)
            if quantity <= 0:
                continue
            value = money(quantity * prices[ticker])
            if value < c.min_trade_value or value == 0 or value <= c.fee_per_trade:
                continue  # too small to be worth it, or its fee would eat it
            side = "BUY" if delta > 0 else "SELL"
            trades.append(Trade(ticker, side, quantity, prices[ticker], value, c.fee_per_trade))
        return trades

    def cash_after(trades: Sequence[Trade]) -> Decimal:
        flow = sum(
            (t.value - t.fee if t.side == "SELL" else -(t.value + t.fee) for t in trades),
            ZERO,
        )
        return cash + flow

    factor = ONE
    trades = round_trades(factor, ONE)
    turnover = sum((t.value for t in trades), ZERO) / (2 * total)
    if c.max_turnover is not None and turnover > c.max_turnover:
        # Scaled from the unrounded trades: rounding each scaled trade down then keeps
        # the turnover within the limit (scaling the rounded ones would not).
        wanted_turnover = sum((abs(q) * prices[t] for t, q in raw.items()), ZERO) / (2 * total)
        factor = c.max_turnover / wanted_turnover
        trades = round_trades(factor, ONE)
        # Money rounding can still tip a sub-cent trade over: shrink until it fits.
        for _ in range(20):
            turnover = sum((t.value for t in trades), ZERO) / (2 * total)
            if turnover <= c.max_turnover:
                break
            factor = (factor * c.max_turnover / turnover * Decimal("0.999")).quantize(
                Decimal("1E-12"), rounding=ROUND_DOWN
            )
            trades = round_trades(factor, ONE)
        else:
            trades = []
        notes.append(
            f"Every trade was scaled by {factor.quantize(WEIGHT)} to keep turnover"
            f" within {c.max_turnover}."
        )

    # Buys may spend down to the buffer, or to what the sells leave if that is less.
    proceeds = sum((t.value - t.fee for t in trades if t.side == "SELL"), ZERO)
    floor = min(total * c.cash_buffer, cash + proceeds)
    buy_factor = ONE
    for _ in range(60):  # shrink buys until cash stays at or above the floor
        after = cash_after(trades)
        if after >= floor or not any(t.side == "BUY" for t in trades):
            break
        buys = sum((t.value + t.fee for t in trades if t.side == "BUY"), ZERO)
        shortfall = floor - after
        buy_factor *= max(ZERO, (buys - shortfall) / buys) if buys > 0 else ZERO
        buy_factor = buy_factor.quantize(Decimal("1E-12"), rounding=ROUND_DOWN)
        trades = round_trades(factor, buy_factor)
    if buy_factor < 1:
        notes.append("Buys were scaled down so cash stays at or above the buffer.")
    if cash_after(trades) < floor:  # fees alone can do it: then no buys at all
        trades = [t for t in trades if t.side == "SELL"]
    trades.sort(key=lambda t: (t.side != "SELL", t.ticker))  # sells first: they fund buys

    final_cash = cash_after(trades)
    quantity_after = dict(held)
    for t in trades:
        change = t.quantity if t.side == "BUY" else -t.quantity
        quantity_after[t.ticker] = quantity_after.get(t.ticker, ZERO) + change
    lines = [
        Line(
            ticker=ticker,
            target=None if ticker in c.exclude else goal.get(ticker, ZERO).quantize(WEIGHT),
            weight_before=_weight(values.get(ticker, ZERO), total),
            weight_after=_weight(money(quantity_after.get(ticker, ZERO) * prices[ticker]), total),
            quantity_before=held.get(ticker, ZERO),
            quantity_after=quantity_after.get(ticker, ZERO),
            tolerance=None
            if ticker in c.exclude
            else max(
                c.drift_band,
                (step * prices[ticker] + c.min_trade_value + c.fee_per_trade + 2 * MONEY) / total,
            ).quantize(WEIGHT, rounding=ROUND_UP),
        )
        for ticker in sorted(set(held) | set(goal))
    ]
    traded = sum((t.value for t in trades), ZERO)
    spread = traded * c.cost_bps / Decimal(10_000)
    return Proposal(
        trades=trades,
        lines=lines,
        total_value=total,
        cash_before=cash,
        cash_after=final_cash,
        cash_weight_after=_weight(final_cash, total),
        turnover=(traded / (2 * total)).quantize(WEIGHT),
        estimated_cost=money(sum((t.fee for t in trades), ZERO) + spread),
        scaled_targets=scaled,
        notes=notes,
    )

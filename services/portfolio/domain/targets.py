"""Target weights derived from recommendations: "follow the recommendations" for a whole
portfolio and the "impact" of following one call. Pure: no I/O. The rules, also in
docs/portfolio.md:

- **Follow the recommendations** over a universe (the holdings not excluded, plus any
  tickers named): each ticker scores ``0`` for SELL, ``1`` for HOLD or no call, and
  ``1 + buy_tilt x confidence`` for BUY; its target is its score over the sum of scores
  (rounded down to 6 places, so they never sum above 1). With the default tilt of 1 a BUY
  at confidence 0.8 weighs 1.8 HOLDs; SELL is excluded (its position is sold).
- **Impact** of one call on a ticker at weight ``w``: SELL -> target 0 (sell it all);
  BUY -> ``min(w + step, max(limit, w))`` (add ``step`` of total value, never beyond the
  position limit and never selling); HOLD -> no trade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal

from services.portfolio.domain.ledger import WEIGHT, ZERO

ONE = Decimal(1)


def follow(
    calls: Mapping[str, tuple[str, float]], universe: Sequence[str], buy_tilt: Decimal
) -> dict[str, Decimal]:
    """Targets over ``universe`` from each ticker's latest (action, confidence)."""
    scores: dict[str, Decimal] = {}
    for ticker in sorted(set(universe)):
        action, confidence = calls.get(ticker, ("HOLD", 0.0))
        if action == "SELL":
            scores[ticker] = ZERO
        elif action == "BUY":
            scores[ticker] = ONE + buy_tilt * Decimal(repr(confidence))
        else:
            scores[ticker] = ONE
    total = sum(scores.values(), ZERO)
    if total == 0:
        return dict.fromkeys(scores, ZERO)
    return {t: (s / total).quantize(WEIGHT, rounding=ROUND_DOWN) for t, s in scores.items()}


def impact_target(action: str, weight: Decimal, step: Decimal, limit: Decimal) -> Decimal | None:
    """The ticker's target weight if its call is followed; None: nothing to trade."""
    if action == "SELL":
        return ZERO
    if action == "BUY":
        return min(weight + step, max(limit, weight))
    return None

"""Routes of the risk x-ray, the impact preview and the targets that read other contexts
(recommendations, the optimiser), in process on the real PostgreSQL, Redis and NATS, with
market's and recommendations' sides of their subjects served by the test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import empyrical
import numpy as np
import pytest
from pydantic import BaseModel

from services.portfolio.schemas import ImpactPreview, PortfolioXRay, RebalanceProposal
from services.portfolio.tests.support import deposit, etag, ledger_rows, post, ticker
from shared.messaging import Delivered
from tests.inprocess import InProcessApp

D = Decimal


class _Tickers(BaseModel):
    tickers: list[str] | None = None
    start: date | None = None
    end: date | None = None
    adjusted: bool = True
    cursor: Any = None
    limit: int = 200


class _Span(BaseModel):
    start: date
    end: date


class _Any(BaseModel):
    model_config = {"extra": "allow"}


@dataclass
class World:
    """What the other contexts answer in one test."""

    prices: dict[str, float] = field(default_factory=dict)
    sectors: dict[str, str] = field(default_factory=dict)
    closes: dict[str, list[tuple[date, float]]] = field(default_factory=dict)
    index: dict[date, float] = field(default_factory=dict)
    calls: dict[str, tuple[str, float]] = field(default_factory=dict)
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    run_id: uuid.UUID | None = field(default_factory=uuid.uuid4)
    asked_adjusted: list[bool] = field(default_factory=list)

    def walk(self, symbol: str, seed: int, vol: float, days: int = 200) -> None:
        rng = np.random.default_rng(seed)
        today = datetime.now(UTC).date()
        series = [today - timedelta(days=days - i) for i in range(days)]
        levels = self.prices[symbol] * np.cumprod(1 + rng.normal(0, vol, days)) / 1.0
        self.closes[symbol] = [(d, round(float(v), 4)) for d, v in zip(series, levels, strict=True)]
        if not self.index:
            ix = 1000 * np.cumprod(1 + rng.normal(0, 0.01, days))
            self.index.update({d: float(v) for d, v in zip(series, ix, strict=True)})


async def _serve(app: InProcessApp, world: World, *, recommendations: bool) -> list[Any]:
    async def quotes(request: _Tickers, _: Delivered) -> BaseModel:
        found = [t for t in request.tickers or [] if t in world.prices]
        return _Any(
            quotes=[
                {
                    "ticker": t,
                    "price": world.prices[t],
                    "ts": 1_764_000_000_000,
                    "sector": world.sectors.get(t),
                }
                for t in found
            ],
            missing=[t for t in request.tickers or [] if t not in world.prices],
        )

    async def history(request: _Tickers, _: Delivered) -> BaseModel:
        world.asked_adjusted.append(request.adjusted)
        assert request.start is not None and request.end is not None
        series = [
            {"ticker": t, "dates": [d for d, _ in rows], "closes": [c for _, c in rows]}
            for t in request.tickers or []
            if (
                rows := [
                    (d, c) for d, c in world.closes.get(t, []) if request.start <= d <= request.end
                ]
            )
        ]
        missing = [t for t in request.tickers or [] if t not in world.closes]
        return _Any(series=series, missing=missing, next_cursor=None)

    async def index(request: _Span, _: Delivered) -> BaseModel:
        days = sorted(d for d in world.index if request.start <= d <= request.end)
        return _Any(
            dates=days, price_return=[1.0] * len(days), total_return=[world.index[d] for d in days]
        )

    async def latest(request: _Tickers, _: Delivered) -> BaseModel:
        wanted = request.tickers if request.tickers is not None else sorted(world.calls)
        calls = [
            {
                "id": str(world.ids.setdefault(t, uuid.uuid4())),
                "ticker": t,
                "action": a,
                "confidence": c,
                "score": 1.0,
                "hypothetical": False,
                "thesis": "...",
            }
            for t in wanted
            if (found := world.calls.get(t)) is not None
            for a, c in [found]
        ]
        return _Any(
            run_id=str(world.run_id) if world.run_id else None,
            as_of=date.today().isoformat() if world.run_id else None,
            calls=calls if world.run_id else [],
            missing=[t for t in wanted if t not in world.calls],
            next_cursor=None,
        )

    bus = app.app.state.resources.bus
    served = [
        await bus.serve("market.rpc.quotes", _Tickers, quotes, queue=None),
        await bus.serve("market.rpc.history", _Tickers, history, queue=None),
        await bus.serve("market.rpc.index", _Span, index, queue=None),
    ]
    if recommendations:
        served.append(await bus.serve("recommendations.rpc.latest", _Tickers, latest, queue=None))
    return served


@pytest.fixture
async def world(portfolio: InProcessApp) -> AsyncIterator[World]:
    state = World()
    served = await _serve(portfolio, state, recommendations=True)
    yield state
    for s in served:
        await s.unsubscribe()


@pytest.fixture
async def market_only(portfolio: InProcessApp) -> AsyncIterator[World]:
    """Market answers; nobody serves recommendations.rpc.latest (it is down)."""
    state = World()
    served = await _serve(portfolio, state, recommendations=False)
    yield state
    for s in served:
        await s.unsubscribe()


async def holding(
    app: InProcessApp, world: World, cash: str, buys: dict[str, tuple[int, float, str]]
) -> dict[str, str]:
    caller = app.token()
    await deposit(app, caller, cash)
    for seed, (symbol, (quantity, price, sector)) in enumerate(buys.items()):
        world.prices[symbol] = price
        world.sectors[symbol] = sector
        world.walk(symbol, seed + 1, 0.01 * (seed + 1))
        trade = {"kind": "BUY", "ticker": symbol, "quantity": str(quantity), "price": str(price)}
        response = await post(app, "/api/v1/portfolio/transactions", trade, caller)
        assert response.status_code == 201, response.text
    return caller


async def test_the_xray_flags_concentration_and_sells_and_its_risk_matches_empyrical(
    portfolio: InProcessApp, world: World
) -> None:
    a, b, c = ticker(), ticker(), ticker()
    caller = await holding(
        portfolio,
        world,
        "10000",
        {a: (50, 100.0, "Tech"), b: (30, 100.0, "Tech"), c: (10, 50.0, "Energy")},
    )
    world.calls = {a: ("HOLD", 0.5), b: ("SELL", 0.8), c: ("BUY", 0.9)}
    response = await portfolio.client.get("/api/v1/portfolio/xray", headers=caller)
    assert response.status_code == 200, response.text
    x = PortfolioXRay.model_validate(response.json())
    # V = 10000: a 0.5, b 0.3, c 0.05, cash 0.15; Tech 0.8.
    assert [(p.name, p.weight) for p in x.positions_over_limit] == [(a, D("0.5")), (b, D("0.3"))]
    assert [(s.name, s.excess) for s in x.sectors_over_limit] == [("Tech", D("0.5"))]
    assert x.limits.max_position_weight == D("0.10") and x.cash_weight == D("0.15")
    assert [(s.ticker, s.recommendation_id) for s in x.sell_signals.holdings] == [(b, world.ids[b])]
    assert x.sell_signals.available and x.sell_signals.run_id == world.run_id
    assert set(world.asked_adjusted) == {True}  # the x-ray reads adjusted closes
    # The risk figures against empyrical on the constant-weight series built here.
    days = sorted(world.index)
    closes = np.array([[dict(world.closes[t])[d] for t in (a, b, c)] for d in days])
    returns = closes[1:] / closes[:-1] - 1
    series = returns @ np.array([0.5, 0.3, 0.05])
    index = np.array([world.index[d] for d in days])
    market_returns = index[1:] / index[:-1] - 1
    assert x.risk.available and x.risk.days == len(days) - 1
    assert float(x.risk.volatility.value or 0) == pytest.approx(
        empyrical.annual_volatility(series), abs=1e-8
    )
    assert float(x.risk.beta.value or 0) == pytest.approx(
        empyrical.beta(series, market_returns), abs=1e-8
    )
    assert float(x.risk.max_drawdown.value or 0) == pytest.approx(
        empyrical.max_drawdown(series), abs=1e-8
    )
    # Limits overridable per request.
    loose = await portfolio.client.get(
        "/api/v1/portfolio/xray?max_position_weight=0.6&max_sector_weight=0.9", headers=caller
    )
    assert loose.json()["positions_over_limit"] == [] and loose.json()["sectors_over_limit"] == []
    bad = await portfolio.client.get("/api/v1/portfolio/xray?max_position_weight=2", headers=caller)
    assert bad.status_code == 422


async def test_the_xray_answers_when_recommendations_is_down(
    portfolio: InProcessApp, market_only: World
) -> None:
    a = ticker()
    caller = await holding(portfolio, market_only, "1000", {a: (5, 100.0, "Tech")})
    response = await portfolio.client.get("/api/v1/portfolio/xray", headers=caller)
    assert response.status_code == 200, response.text
    x = PortfolioXRay.model_validate(response.json())
    assert not x.sell_signals.available and x.sell_signals.note
    assert x.risk.available and x.weights[0].ticker == a
    # A target that needs the calls cannot be made without them: 503, not a guess.
    refused = await portfolio.client.put(
        "/api/v1/portfolio/rebalance", json={"target": {"kind": "recommendations"}}, headers=caller
    )
    assert refused.status_code == 503
    assert refused.json()["error_code"] == "RECOMMENDATIONS_UNAVAILABLE"


async def test_the_xray_answers_when_market_is_down(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "100")
    trade = {"kind": "BUY", "ticker": ticker(), "quantity": "1", "price": "10"}
    assert (
        await post(portfolio, "/api/v1/portfolio/transactions", trade, caller)
    ).status_code == 201
    response = await portfolio.client.get("/api/v1/portfolio/xray", headers=caller)
    assert response.status_code == 200, response.text
    x = PortfolioXRay.model_validate(response.json())
    assert not x.prices_available and x.unpriced and not x.risk.available


async def test_impact_previews_a_sell_and_a_buy_and_writes_nothing(
    portfolio: InProcessApp, world: World
) -> None:
    a, b = ticker(), ticker()
    caller = await holding(portfolio, world, "10000", {a: (20, 100.0, "Tech")})
    world.prices[b] = 40.0
    world.sectors[b] = "Health"
    world.walk(b, 9, 0.02)
    world.calls = {a: ("SELL", 0.7), b: ("BUY", 0.6)}
    world.ids = {a: uuid.uuid4(), b: uuid.uuid4()}
    before, rows = await etag(portfolio, caller), await ledger_rows(portfolio, caller)
    sell = await portfolio.client.get(
        f"/api/v1/portfolio/impact?ticker={a.lower()}", headers=caller
    )
    assert sell.status_code == 200, sell.text
    preview = ImpactPreview.model_validate(sell.json())
    assert [(t.ticker, t.side, t.quantity) for t in preview.trades] == [(a, "SELL", D(20))]
    assert preview.weight_before == D("0.2") and preview.weight_after == 0
    assert preview.cash_after == D("10000") and not preview.written
    assert [s.ticker for s in preview.xray_before.sell_signals.holdings] == [a]
    assert preview.xray_after.sell_signals.holdings == [] and preview.xray_after.weights == []
    # BUY by id: + 0.02 of V = 200 -> 5 shares at 40 (the position limit is 0.10).
    buy = await portfolio.client.get(
        f"/api/v1/portfolio/impact?recommendation_id={world.ids[b]}", headers=caller
    )
    assert buy.status_code == 200, buy.text
    bought = ImpactPreview.model_validate(buy.json())
    assert bought.recommendation.ticker == b and bought.recommendation.action == "BUY"
    assert [(t.ticker, t.side, t.quantity) for t in bought.trades] == [(b, "BUY", D(5))]
    assert bought.weight_after == D("0.02") and bought.xray_after.weights[-1].ticker == b
    capped = await portfolio.client.get(
        f"/api/v1/portfolio/impact?ticker={b}&step=0.5", headers=caller
    )
    assert ImpactPreview.model_validate(capped.json()).weight_after == D("0.1")
    assert await etag(portfolio, caller) == before
    assert await ledger_rows(portfolio, caller) == rows
    unknown = await portfolio.client.get(
        f"/api/v1/portfolio/impact?ticker={ticker()}", headers=caller
    )
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RECOMMENDATION_NOT_FOUND"
    both = await portfolio.client.get(
        f"/api/v1/portfolio/impact?ticker={a}&recommendation_id={world.ids[b]}", headers=caller
    )
    assert both.status_code == 422
    world.run_id = None
    none = await portfolio.client.get(f"/api/v1/portfolio/impact?ticker={a}", headers=caller)
    assert none.status_code == 409 and none.json()["error_code"] == "NO_RECOMMENDATIONS"


async def test_an_empty_portfolio_gets_answers_not_errors(
    portfolio: InProcessApp, world: World
) -> None:
    """Nothing held and no cash (a total of zero, found by the fuzzer as a 500)."""
    a, b = ticker(), ticker()
    for symbol in (a, b):
        world.prices[symbol] = 10.0
        world.sectors[symbol] = "Tech"
        world.walk(symbol, 3, 0.01)
    world.calls = {a: ("SELL", 0.7), b: ("BUY", 0.6)}
    world.ids = {a: uuid.uuid4(), b: uuid.uuid4()}
    caller = portfolio.token()
    sell = await portfolio.client.get(f"/api/v1/portfolio/impact?ticker={a}", headers=caller)
    assert sell.status_code == 200, sell.text
    preview = ImpactPreview.model_validate(sell.json())
    assert preview.trades == [] and preview.weight_before == 0 and preview.notes
    buy = await portfolio.client.get(
        f"/api/v1/portfolio/impact?recommendation_id={world.ids[b]}", headers=caller
    )
    assert buy.status_code == 422 and buy.json()["error_code"] == "EMPTY_PORTFOLIO", buy.text
    xray = await portfolio.client.get("/api/v1/portfolio/xray", headers=caller)
    assert xray.status_code == 200 and xray.json()["weights"] == [], xray.text


async def test_impact_without_recommendations_is_503(
    portfolio: InProcessApp, market_only: World
) -> None:
    caller = await holding(portfolio, market_only, "1000", {ticker(): (1, 10.0, "Tech")})
    response = await portfolio.client.get(
        f"/api/v1/portfolio/impact?ticker={ticker()}", headers=caller
    )
    assert response.status_code == 503
    assert response.json()["error_code"] == "RECOMMENDATIONS_UNAVAILABLE"


async def test_following_the_recommendations_under_constraints(
    portfolio: InProcessApp, world: World
) -> None:
    a, b, c, x = ticker(), ticker(), ticker(), ticker()
    caller = await holding(
        portfolio,
        world,
        "10000",
        {
            a: (10, 100.0, "Tech"),
            b: (10, 100.0, "Tech"),
            c: (10, 100.0, "Energy"),
            x: (5, 100.0, "Energy"),
        },
    )
    world.calls = {a: ("BUY", 0.5), b: ("SELL", 0.9), c: ("HOLD", 0.4), x: ("SELL", 0.9)}
    request = {
        "target": {"kind": "recommendations"},
        "constraints": {"cash_buffer": "0.05", "exclude": [x], "min_trade_value": "100"},
    }
    response = await portfolio.client.put(
        "/api/v1/portfolio/rebalance", json=request, headers=caller
    )
    assert response.status_code == 200, response.text
    proposal = RebalanceProposal.model_validate(response.json())
    targets = {line.ticker: line.target for line in proposal.lines}
    # Scores: a 1.5, b 0, c 1 (x excluded): a 0.6, c 0.4 -- scaled to 0.95 - 0.05 (x) = 0.9.
    assert targets == {a: D("0.54"), b: D(0), c: D("0.36"), x: None}
    assert proposal.scaled_targets and "recommendations" in (proposal.target_method or "")
    assert all(t.ticker != x and t.value >= 100 for t in proposal.trades)
    assert proposal.cash_after >= proposal.total_value * D("0.05")
    assert proposal.xray_before and proposal.xray_after
    assert {s.ticker for s in proposal.xray_before.sell_signals.holdings} == {b, x}
    assert {s.ticker for s in proposal.xray_after.sell_signals.holdings} == {x}


@pytest.mark.parametrize("method", ["min_variance", "risk_parity"])
async def test_optimised_targets_under_constraints(
    portfolio: InProcessApp, world: World, method: str
) -> None:
    a, b, c = ticker(), ticker(), ticker()
    caller = await holding(
        portfolio,
        world,
        "5000",
        {a: (10, 50.0, "Tech"), b: (10, 80.0, "Tech"), c: (10, 20.0, "Energy")},
    )
    request = {
        "target": {"kind": "optimised", "method": method, "history_days": 180},
        "constraints": {"max_turnover": "0.1", "fractional": True, "drift_band": "0.01"},
    }
    response = await portfolio.client.put(
        "/api/v1/portfolio/rebalance", json=request, headers=caller
    )
    assert response.status_code == 200, response.text
    proposal = RebalanceProposal.model_validate(response.json())
    targets = {line.ticker: line.target or D(0) for line in proposal.lines}
    assert sum(targets.values()) <= 1 and sum(targets.values()) > D("0.99")
    # The least volatile walk (a: 1 %/day) weighs most, the most volatile (c: 3 %) least.
    assert targets[a] > targets[b] > targets[c] > 0
    assert proposal.turnover <= D("0.1") and "Ledoit-Wolf" in (proposal.target_method or "")
    assert proposal.xray_after is not None and proposal.xray_after.risk.available
    after = {w.ticker: w.weight for w in proposal.xray_after.weights}
    assert after == {line.ticker: line.weight_after for line in proposal.lines}
    world.closes[c] = world.closes[c][-30:]  # too little history for c
    short = await portfolio.client.put("/api/v1/portfolio/rebalance", json=request, headers=caller)
    assert short.status_code == 422 and short.json()["error_code"] == "INSUFFICIENT_HISTORY"
    assert short.json()["details"]["tickers"] == [c]

"""Portfolio routes, run in process on the real PostgreSQL, Redis and NATS (identity
stands in through the test's signing key; market's quotes come from the ``market``
fixture, on the real NATS). Grouped per route."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

import httpx

from services.portfolio.schemas import (
    ImportReport,
    Performance,
    PortfolioValuation,
    RebalanceProposal,
    Recorded,
)
from services.portfolio.tests.support import (
    HISTORY,
    INDEX,
    SECTORS,
    deposit,
    etag,
    ledger_rows,
    post,
    ticker,
)
from tests.inprocess import InProcessApp

# --- POST /portfolio -------------------------------------------------------------------


async def test_create_records_opening_cash_exactly(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    created = await portfolio.client.post(
        "/api/v1/portfolio", json={"name": "Main", "cash": "1000.1234"}, headers=caller
    )
    assert created.status_code == 201, created.text
    assert created.json()["cash"] == "1000.1234"
    rows = await ledger_rows(portfolio, caller)
    assert [(r["kind"], r["amount"]) for r in rows] == [("DEPOSIT", "1000.1234")]


async def test_a_second_portfolio_of_the_same_name_conflicts(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    first = await portfolio.client.post("/api/v1/portfolio", json={"name": "A"}, headers=caller)
    again = await portfolio.client.post("/api/v1/portfolio", json={"name": "A"}, headers=caller)
    assert (first.status_code, again.status_code) == (201, 409)
    listed = (await portfolio.client.get("/api/v1/portfolios", headers=caller)).json()["items"]
    assert len(listed) == 1


async def test_a_burst_of_creates_beyond_the_pool_all_complete(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    burst = 5 * portfolio.settings.db_pool_max
    async with asyncio.timeout(60):
        answers = await asyncio.gather(
            *(
                portfolio.client.post("/api/v1/portfolio", json={"name": f"p{i}"}, headers=caller)
                for i in range(burst)
            )
        )
    assert [a.status_code for a in answers] == [201] * burst


async def test_negative_cash_is_refused(portfolio: InProcessApp) -> None:
    response = await portfolio.client.post(
        "/api/v1/portfolio", json={"name": "x", "cash": "-1"}, headers=portfolio.token()
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


# --- GET /portfolio, /portfolios, /portfolios/{id} ----------------------------------------


async def test_the_default_portfolio_is_made_on_first_use_once(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    answers = await asyncio.gather(
        *(portfolio.client.get("/api/v1/portfolio", headers=caller) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["id"] for a in answers}) == 1
    body = answers[0].json()
    assert body["is_default"] and body["cash"] == "0.0000" and body["positions"] == []
    assert answers[0].headers["ETag"] == '"v1"'
    listed = (await portfolio.client.get("/api/v1/portfolios", headers=caller)).json()["items"]
    assert [p["id"] for p in listed] == [body["id"]]


async def test_an_existing_portfolio_becomes_the_default(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    created = await portfolio.client.post(
        "/api/v1/portfolio", json={"name": "Growth"}, headers=caller
    )
    default = await portfolio.client.get("/api/v1/portfolio", headers=caller)
    assert default.json()["id"] == created.json()["id"]


async def test_each_caller_sees_only_their_own(portfolio: InProcessApp) -> None:
    alice, bob = portfolio.token(), portfolio.token()
    await portfolio.client.post("/api/v1/portfolio", json={"name": "Alice's"}, headers=alice)
    seen = (await portfolio.client.get("/api/v1/portfolios", headers=bob)).json()["items"]
    assert seen == []


async def test_portfolios_page_with_a_cursor(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    for i in range(5):
        await portfolio.client.post("/api/v1/portfolio", json={"name": f"n{i}"}, headers=caller)
    names, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await portfolio.client.get("/api/v1/portfolios" + query, headers=caller)).json()
        names += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == [f"n{i}" for i in range(5)]
    bad = await portfolio.client.get("/api/v1/portfolios?cursor=nonsense", headers=caller)
    assert bad.status_code == 422 and bad.json()["error_code"] == "INVALID_CURSOR"


async def test_positions_are_valued_at_market_quotes(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a, b, c = ticker(), ticker(), ticker()
    market[a], market[b] = 12.5, 40.0  # c: market does not know it
    SECTORS[a] = "Industrials"  # b's quote comes without a sector
    await deposit(portfolio, caller, "10000")
    for symbol, quantity, price in ((a, "100", "10"), (b, "10.5", "38"), (c, "1", "5")):
        response = await post(
            portfolio,
            "/api/v1/portfolio/transactions",
            {"kind": "BUY", "ticker": symbol, "quantity": quantity, "price": price, "fee": "1"},
            caller,
        )
        assert response.status_code == 201, response.text
    response = await portfolio.client.get("/api/v1/portfolio", headers=caller)
    body = PortfolioValuation.model_validate(response.json())
    by = {p.ticker: p for p in body.positions}
    # cash: 10000 - (1000+1) - (399+1) - (5+1)
    assert body.cash == Decimal("8593")
    assert by[a].market_value == Decimal("1250") and by[a].cost_basis == Decimal("1001")
    assert by[a].unrealised_pnl == Decimal("249") and by[a].average_cost == Decimal("10.01")
    assert by[b].market_value == Decimal("420") and by[b].unrealised_pnl == Decimal("20")
    assert by[c].market_value is None and body.unpriced == [c]
    assert body.total_value == Decimal("8593") + Decimal("1250") + Decimal("420")
    assert by[a].weight == (Decimal("1250") / body.total_value).quantize(Decimal("0.000001"))
    assert body.prices_available and body.prices_as_of is not None
    assert [(s.sector, s.weight) for s in body.sectors] == [
        ("Industrials", by[a].weight),
        ("UNCLASSIFIED", by[b].weight),
    ]


async def test_without_market_the_portfolio_still_answers(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "100")
    symbol = ticker()
    await post(
        portfolio,
        "/api/v1/portfolio/transactions",
        {"kind": "BUY", "ticker": symbol, "quantity": "1", "price": "10"},
        caller,
    )
    response = await portfolio.client.get("/api/v1/portfolio", headers=caller)
    body = response.json()
    assert response.status_code == 200
    assert body["prices_available"] is False and body["unpriced"] == [symbol]
    assert body["positions"][0]["market_value"] is None
    assert body["positions"][0]["cost_basis"] == "10.0000" and body["total_value"] == "90.0000"
    at_market = await post(
        portfolio, "/api/v1/portfolio/positions", {"ticker": symbol, "quantity": "1"}, caller
    )
    assert at_market.status_code == 503
    assert at_market.json()["error_code"] == "MARKET_UNAVAILABLE"


async def test_another_users_portfolio_is_not_found(portfolio: InProcessApp) -> None:
    alice, bob = portfolio.token(), portfolio.token()
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=alice)).json()["id"]
    response = await portfolio.client.get(f"/api/v1/portfolios/{pid}", headers=bob)
    assert response.status_code == 404
    assert response.json()["error_code"] == "PORTFOLIO_NOT_FOUND"
    assert "positions" not in response.json()


# --- POST /portfolio/positions ------------------------------------------------------------


async def test_buy_at_the_current_price(portfolio: InProcessApp, market: dict[str, float]) -> None:
    caller = portfolio.token()
    symbol = ticker()
    market[symbol] = 187.23
    await deposit(portfolio, caller, "1000")
    response = await post(
        portfolio,
        "/api/v1/portfolio/positions",
        {"ticker": symbol.lower(), "quantity": "2"},
        caller,
    )
    assert response.status_code == 201, response.text
    recorded = Recorded.model_validate(response.json())  # the pre-encoded body is the model
    assert recorded.transaction.price == Decimal("187.23")
    assert recorded.transaction.amount == Decimal("-374.46")
    assert recorded.portfolio.cash == Decimal("625.54")
    assert response.headers["ETag"] == f'"v{recorded.portfolio.version}"'


async def test_buy_of_a_ticker_market_lacks_needs_a_price(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "1000")
    response = await post(
        portfolio, "/api/v1/portfolio/positions", {"ticker": ticker(), "quantity": "1"}, caller
    )
    assert response.status_code == 422 and response.json()["error_code"] == "UNKNOWN_TICKER"


async def test_buy_beyond_cash_is_refused_and_writes_nothing(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "100")
    before = await etag(portfolio, caller)
    response = await post(
        portfolio,
        "/api/v1/portfolio/positions",
        {"ticker": ticker(), "quantity": "10", "price": "10", "fee": "0.0001"},
        caller,
    )
    assert response.status_code == 409, response.text
    assert response.json()["error_code"] == "INSUFFICIENT_CASH"
    assert response.json()["details"]["needed"] == "100.0001"
    assert len(await ledger_rows(portfolio, caller)) == 1
    assert await etag(portfolio, caller) == before


async def test_a_change_without_if_match_is_428_and_a_stale_one_412(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "100")
    body = {"ticker": ticker(), "quantity": "1", "price": "1"}
    missing = await post(portfolio, "/api/v1/portfolio/positions", body, caller, if_match=None)
    assert missing.status_code == 428 and missing.json()["error_code"] == "PRECONDITION_REQUIRED"
    current = await etag(portfolio, caller)
    ok = await post(portfolio, "/api/v1/portfolio/positions", body, caller, if_match=current)
    assert ok.status_code == 201
    stale = await post(portfolio, "/api/v1/portfolio/positions", body, caller, if_match=current)
    assert stale.status_code == 412 and stale.json()["error_code"] == "VERSION_MISMATCH"
    assert stale.json()["details"]["etag"] == ok.headers["ETag"]
    weak = await post(
        portfolio, "/api/v1/portfolio/positions", body, caller, if_match="W/" + ok.headers["ETag"]
    )
    assert weak.status_code == 412
    assert len(await ledger_rows(portfolio, caller)) == 2


async def test_the_same_idempotency_key_gives_the_same_answer_once(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    await deposit(portfolio, caller, "100")
    body = {"ticker": ticker(), "quantity": "1", "price": "1"}
    first = await post(portfolio, "/api/v1/portfolio/positions", body, caller, key="k1")
    again = await post(portfolio, "/api/v1/portfolio/positions", body, caller, key="k1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await post(
        portfolio, "/api/v1/portfolio/positions", {**body, "quantity": "2"}, caller, key="k1"
    )
    assert other.status_code == 422 and other.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    # Keys are the caller's own: another user's "k1" is a different key.
    stranger = portfolio.token()
    await deposit(portfolio, stranger, "100")
    theirs = await post(portfolio, "/api/v1/portfolio/positions", body, stranger, key="k1")
    assert theirs.status_code == 201 and theirs.json() != first.json()
    assert [r["kind"] for r in await ledger_rows(portfolio, caller)] == ["BUY", "DEPOSIT"]


async def test_a_refused_request_does_not_use_up_its_key(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    body = {"ticker": ticker(), "quantity": "1", "price": "50"}
    refused = await post(portfolio, "/api/v1/portfolio/positions", body, caller, key="k")
    assert refused.status_code == 409
    await deposit(portfolio, caller, "50")
    retried = await post(portfolio, "/api/v1/portfolio/positions", body, caller, key="k")
    assert retried.status_code == 201, retried.text


# --- POST /portfolio/transactions, reversals ----------------------------------------------


async def test_sell_realises_fifo_pnl(portfolio: InProcessApp, market: dict[str, float]) -> None:
    caller = portfolio.token()
    symbol = ticker()
    market[symbol] = 20.0
    await deposit(portfolio, caller, "1000")
    url = "/api/v1/portfolio/transactions"
    for quantity, price in (("10", "10"), ("10", "14")):
        trade = {"kind": "BUY", "ticker": symbol, "quantity": quantity, "price": price}
        assert (await post(portfolio, url, trade, caller)).status_code == 201
    sell = {"kind": "SELL", "ticker": symbol, "quantity": "15", "price": "16", "fee": "2"}
    assert (await post(portfolio, url, sell, caller)).status_code == 201
    dividend = {"kind": "DIVIDEND", "ticker": symbol, "amount": "1.5"}
    assert (await post(portfolio, url, dividend, caller)).status_code == 201
    body = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()
    (position,) = body["positions"]
    # FIFO: 10 @ 10 and 5 @ 14 sold for 15*16 - 2 = 238; cost 100 + 70 = 170.
    assert position["realised_pnl"] == "68.0000"
    assert position["quantity"] == "5" and position["cost_basis"] == "70.0000"
    assert position["lots"][0]["quantity"] == "5" and position["dividends"] == "1.5000"
    assert body["cash"] == str(Decimal("1000") - 100 - 140 + 238 + Decimal("1.5")) + "000"


async def test_an_oversell_is_refused(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    symbol = ticker()
    await deposit(portfolio, caller, "100")
    url = "/api/v1/portfolio/transactions"
    buy = {"kind": "BUY", "ticker": symbol, "quantity": "1.5", "price": "10"}
    await post(portfolio, url, buy, caller)
    sell = {"kind": "SELL", "ticker": symbol, "quantity": "1.5000000001", "price": "10"}
    response = await post(portfolio, url, sell, caller)
    assert response.status_code == 409 and response.json()["error_code"] == "INSUFFICIENT_QUANTITY"
    assert response.json()["details"]["held"] == "1.5000000000"


async def test_a_backdated_withdrawal_cannot_overdraw_the_past(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    url = "/api/v1/portfolio/transactions"
    deposit_now = {"kind": "DEPOSIT", "amount": "100"}
    assert (await post(portfolio, url, deposit_now, caller)).status_code == 201
    early = {"kind": "WITHDRAWAL", "amount": "10", "executed_at": "2020-01-01T00:00:00Z"}
    response = await post(portfolio, url, early, caller)
    assert response.status_code == 409 and response.json()["error_code"] == "INSUFFICIENT_CASH"


async def test_input_is_validated_per_kind(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    url = "/api/v1/portfolio/transactions"
    for body in (
        {"kind": "BUY", "ticker": "AAPL", "quantity": "1"},  # no price
        {"kind": "DEPOSIT", "amount": "0"},
        {"kind": "DEPOSIT", "amount": "1.00001"},  # beyond money's 4 places
        {"kind": "SPLIT", "ticker": "AAPL", "split_to": 0, "split_from": 1},
        {"kind": "BUY", "ticker": "not a ticker", "quantity": "1", "price": "1"},
        {"kind": "LOAN", "amount": "1"},
        {"kind": "DEPOSIT", "amount": "1", "executed_at": "2999-01-01T00:00:00Z"},
    ):
        response = await post(portfolio, url, body, caller)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_a_split_keeps_cost_and_multiplies_shares(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    symbol = ticker()
    url = "/api/v1/portfolio/transactions"
    await deposit(portfolio, caller, "1000")
    await post(
        portfolio, url, {"kind": "BUY", "ticker": symbol, "quantity": "3", "price": "100"}, caller
    )
    split = {"kind": "SPLIT", "ticker": symbol, "split_to": 3, "split_from": 2}
    assert (await post(portfolio, url, split, caller)).status_code == 201
    (position,) = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()[
        "positions"
    ]
    assert position["quantity"] == "4.5" and position["cost_basis"] == "300.0000"
    assert position["average_cost"] == "66.666667"


async def test_a_reversal_cancels_an_entry_and_only_once(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    symbol = ticker()
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()["id"]
    url = f"/api/v1/portfolios/{pid}/transactions"
    await post(portfolio, url, {"kind": "DEPOSIT", "amount": "100"}, caller)
    buy = await post(
        portfolio, url, {"kind": "BUY", "ticker": symbol, "quantity": "2", "price": "10"}, caller
    )
    buy_id = buy.json()["transaction"]["id"]
    reversed_ = await post(portfolio, f"{url}/{buy_id}/reversal", {"note": "typo"}, caller)
    assert reversed_.status_code == 201, reversed_.text
    entry = reversed_.json()["transaction"]
    assert (entry["reverses"], entry["amount"], entry["quantity"]) == (buy_id, "20.0000", "-2")
    assert reversed_.json()["portfolio"]["cash"] == "100.0000"
    again = await post(portfolio, f"{url}/{buy_id}/reversal", {}, caller)
    assert again.status_code == 409 and again.json()["error_code"] == "ALREADY_REVERSED"
    body = (await portfolio.client.get(f"/api/v1/portfolios/{pid}", headers=caller)).json()
    assert body["positions"] == [] and len(await ledger_rows(portfolio, caller)) == 3


async def test_reversing_a_buy_whose_shares_were_sold_is_refused(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    symbol = ticker()
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()["id"]
    url = f"/api/v1/portfolios/{pid}/transactions"
    await post(portfolio, url, {"kind": "DEPOSIT", "amount": "100"}, caller)
    buy = await post(
        portfolio, url, {"kind": "BUY", "ticker": symbol, "quantity": "2", "price": "10"}, caller
    )
    await post(
        portfolio, url, {"kind": "SELL", "ticker": symbol, "quantity": "2", "price": "11"}, caller
    )
    response = await post(
        portfolio, f"{url}/{buy.json()['transaction']['id']}/reversal", {}, caller
    )
    assert response.status_code == 409 and response.json()["error_code"] == "INSUFFICIENT_QUANTITY"


async def test_transactions_page_newest_first(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    for amount in ("1", "2", "3"):
        await deposit(portfolio, caller, amount)
    first = (
        await portfolio.client.get("/api/v1/portfolio/transactions?limit=2", headers=caller)
    ).json()
    rest = (
        await portfolio.client.get(
            f"/api/v1/portfolio/transactions?limit=2&cursor={first['next_cursor']}",
            headers=caller,
        )
    ).json()
    amounts = [r["amount"] for r in first["items"] + rest["items"]]
    assert amounts == ["3.0000", "2.0000", "1.0000"] and rest["next_cursor"] is None


# --- PATCH /portfolios/{id} ----------------------------------------------------------------


async def test_rename_needs_the_current_etag(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()["id"]
    path = f"/api/v1/portfolios/{pid}"
    current = await etag(portfolio, caller, path)
    renamed = await portfolio.client.patch(
        path, json={"name": "Long term"}, headers={**caller, "If-Match": current}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Long term"
    assert renamed.headers["ETag"] != current
    stale = await portfolio.client.patch(
        path, json={"name": "x"}, headers={**caller, "If-Match": current}
    )
    assert stale.status_code == 412
    missing = await portfolio.client.patch(path, json={"name": "x"}, headers=caller)
    assert missing.status_code == 428


# --- GET /portfolio/performance -------------------------------------------------------------


async def test_performance_by_hand_with_paged_history(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    """Flows on the first and the last day of the closes; the values and returns are
    worked out by hand below (B's price never moves)."""
    caller = portfolio.token()
    a, b = ticker(), ticker()
    d1 = date(2025, 1, 6)
    HISTORY[a] = [(d1 + timedelta(days=i), c) for i, c in enumerate([100.0, 110.0, 99.0, 105.0])]
    HISTORY[b] = [(d1 + timedelta(days=i), c) for i, c in enumerate([20.0, 20.0, 20.0, 20.0])]
    # The index: Friday's level before the first day, then the four days.
    for day, level in zip(
        range(-3, 4), [1000.0, 0, 0, 1010.0, 1020.1, 1009.9, 1050.0], strict=True
    ):
        if level:
            INDEX[d1 + timedelta(days=day)] = level
    url = "/api/v1/portfolio/transactions"

    def at(day: int) -> str:
        return f"{d1 + timedelta(days=day)}T15:00:00Z"

    for body in (
        {"kind": "DEPOSIT", "amount": "1100", "executed_at": at(0)},
        {"kind": "BUY", "ticker": a, "quantity": "10", "price": "100", "executed_at": at(0)},
        {"kind": "BUY", "ticker": b, "quantity": "5", "price": "20", "executed_at": at(0)},
        {"kind": "DEPOSIT", "amount": "500", "executed_at": at(2)},
        {"kind": "WITHDRAWAL", "amount": "200", "executed_at": at(3)},
    ):
        assert (await post(portfolio, url, body, caller)).status_code == 201
    response = await portfolio.client.get("/api/v1/portfolio/performance", headers=caller)
    assert response.status_code == 200, response.text
    result = Performance.model_validate(response.json())
    values = [(p.date, p.value, p.net_flow) for p in result.series[:4]]
    assert values == [
        (d1, Decimal("1100"), Decimal("1100")),
        (d1 + timedelta(days=1), Decimal("1200"), Decimal("0")),
        (d1 + timedelta(days=2), Decimal("1590"), Decimal("500")),
        (d1 + timedelta(days=3), Decimal("1450"), Decimal("-200")),
    ]
    # Afterwards the closes stop: the value carries to today, unchanged.
    assert result.series[-1].value == Decimal("1450") and result.as_of == result.series[-1].date
    inception = next(p for p in result.periods if p.period == "INCEPTION")
    expected = (1200 / 1100) * (1590 / 1700) * (1450 / 1390) - 1
    assert inception.twr.value == Decimal(repr(expected)).quantize(Decimal("1E-8"))
    assert "time-weighted" in inception.twr.method and "XIRR" in inception.mwr.method
    assert inception.net_flows == Decimal("1400") and inception.end_value == Decimal("1450")
    assert result.prices_available and result.missing_history == []
    # Against the index: its level before the first day (Friday's) to its last one.
    assert result.benchmark == "market-index-total-return" and result.benchmark_note is None
    assert inception.benchmark_return.value == Decimal("0.05000000")
    assert inception.excess_return.value == Decimal(repr(expected - 0.05)).quantize(Decimal("1E-8"))
    daily = [1200 / 1100 - 1, 1590 / 1700 - 1, 1450 / 1390 - 1]
    bench = [0.01, 1020.1 / 1010 - 1, 1009.9 / 1020.1 - 1, 1050 / 1009.9 - 1]
    assert result.beta.value is not None and "covariance" in result.beta.method
    ys, xs = [0.0, *daily], bench  # then days of no change on both sides, up to today
    extra = len(result.series) - 4
    ys, xs = ys + [0.0] * extra, xs + [0.0] * extra
    my, mx = sum(ys) / len(ys), sum(xs) / len(xs)
    beta = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    assert abs(float(result.beta.value) - beta) < 1e-8
    one_month = next(p for p in result.periods if p.period == "1M")
    assert one_month.available and one_month.twr.value == Decimal("0E-8")


async def test_performance_without_market_values_at_trade_prices(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    url = "/api/v1/portfolio/transactions"
    await post(portfolio, url, {"kind": "DEPOSIT", "amount": "100"}, caller)
    await post(
        portfolio, url, {"kind": "BUY", "ticker": ticker(), "quantity": "2", "price": "10"}, caller
    )
    body = (await portfolio.client.get("/api/v1/portfolio/performance", headers=caller)).json()
    assert body["prices_available"] is False
    assert "index" in body["benchmark_note"] and body["beta"]["value"] is None
    assert all(p["excess_return"]["value"] is None for p in body["periods"])
    assert body["series"][-1]["value"] == "100.0000"


async def test_performance_of_an_empty_portfolio(portfolio: InProcessApp) -> None:
    body = (
        await portfolio.client.get("/api/v1/portfolio/performance", headers=portfolio.token())
    ).json()
    assert body["series"] == [] and body["periods"] == []


# --- PUT /portfolio/rebalance ----------------------------------------------------------------


async def funded(
    app: InProcessApp, caller: dict[str, str], cash: str, buys: list[tuple[str, str, str]]
) -> None:
    await deposit(app, caller, cash)
    for symbol, quantity, price in buys:
        trade = {"kind": "BUY", "ticker": symbol, "quantity": quantity, "price": price}
        response = await post(app, "/api/v1/portfolio/transactions", trade, caller)
        assert response.status_code == 201, response.text


async def test_a_proposal_changes_nothing(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a, b = ticker(), ticker()
    market[a], market[b] = 10.0, 20.0
    await funded(portfolio, caller, "200", [(a, "10", "10")])
    before = await etag(portfolio, caller)
    response = await portfolio.client.put(
        "/api/v1/portfolio/rebalance",
        json={"target": {"kind": "explicit", "weights": {a: "0.5", b: "0.5"}}},
        headers=caller,
    )
    assert response.status_code == 200, response.text
    proposal = RebalanceProposal.model_validate(response.json())
    assert [(t.ticker, t.side, t.quantity) for t in proposal.trades] == [(b, "BUY", Decimal(5))]
    assert not proposal.applied and proposal.transactions == []
    assert proposal.cash_after == 0 and proposal.turnover == Decimal("0.25")
    assert await etag(portfolio, caller) == before
    assert len(await ledger_rows(portfolio, caller)) == 2


async def test_applying_needs_a_key_and_if_match_and_trades_once(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a, b, c = ticker(), ticker(), ticker()
    market[a], market[b], market[c] = 10.0, 25.0, 7.5
    await funded(portfolio, caller, "1000", [(a, "60", "10")])
    request = {
        "target": {"kind": "equal", "tickers": [a, b, c]},
        "constraints": {"cash_buffer": "0.05", "fee_per_trade": "1"},
        "apply": True,
    }
    url = "/api/v1/portfolio/rebalance"
    no_key = await portfolio.client.put(url, json=request, headers={**caller, "If-Match": "*"})
    assert no_key.status_code == 422 and no_key.json()["error_code"] == "IDEMPOTENCY_KEY_REQUIRED"
    keyed = {**caller, "Idempotency-Key": "rebalance-1"}
    no_match = await portfolio.client.put(url, json=request, headers=keyed)
    assert no_match.status_code == 428
    current = await etag(portfolio, caller)
    applied = await portfolio.client.put(url, json=request, headers={**keyed, "If-Match": current})
    assert applied.status_code == 200, applied.text
    again = await portfolio.client.put(url, json=request, headers={**keyed, "If-Match": current})
    assert again.content == applied.content and again.headers["Idempotent-Replayed"] == "true"
    proposal = RebalanceProposal.model_validate(applied.json())
    assert proposal.applied and len(proposal.transactions) == len(proposal.trades) > 0
    assert [t.note for t in proposal.transactions] == ["rebalance"] * len(proposal.trades)
    rows = await ledger_rows(portfolio, caller)
    assert len(rows) == 2 + len(proposal.trades)  # the retry wrote nothing
    # The portfolio reached its targets within the stated tolerance, cash above the buffer.
    valued = PortfolioValuation.model_validate(
        (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()
    )
    weights = {p.ticker: p.weight for p in valued.positions}
    for line in proposal.lines:
        assert line.target is not None and line.tolerance is not None
        assert abs((weights.get(line.ticker) or 0) - line.target) <= line.tolerance
    assert any(t.side == "BUY" for t in proposal.trades)
    assert valued.cash == proposal.cash_after >= proposal.total_value * Decimal("0.05")
    assert valued.version == proposal.version


async def test_rebalance_without_market_is_503(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    await funded(portfolio, caller, "100", [(ticker(), "1", "10")])
    response = await portfolio.client.put(
        "/api/v1/portfolio/rebalance", json={"target": {"kind": "equal"}}, headers=caller
    )
    assert response.status_code == 503 and response.json()["error_code"] == "MARKET_UNAVAILABLE"


async def test_rebalance_refuses_impossible_targets(
    portfolio: InProcessApp, market: dict[str, float]
) -> None:
    caller = portfolio.token()
    a = ticker()
    market[a] = 10.0
    await funded(portfolio, caller, "100", [(a, "1", "10")])
    url = "/api/v1/portfolio/rebalance"
    for body, code in (
        (
            {"target": {"kind": "explicit", "weights": {a: "0.7", "ZZZZ": "0.7"}}},
            "VALIDATION_ERROR",
        ),
        (
            {
                "target": {"kind": "explicit", "weights": {a: "0.5"}},
                "constraints": {"exclude": [a]},
            },
            "EXCLUDED_TARGET",
        ),
        ({"target": {"kind": "explicit", "weights": {a: "1.5"}}}, "VALIDATION_ERROR"),
    ):
        response = await portfolio.client.put(url, json=body, headers=caller)
        assert response.status_code == 422, response.text
        assert response.json()["error_code"] == code, body


# --- CSV export and import ------------------------------------------------------------------


async def import_csv(
    app: InProcessApp,
    caller: dict[str, str],
    text: str,
    *,
    dry_run: bool = False,
    key: str | None = None,
    if_match: str | None = "*",
) -> httpx.Response:
    headers = {**caller, "Content-Type": "text/csv"}
    if if_match is not None:
        headers["If-Match"] = if_match
    if key is not None:
        headers["Idempotency-Key"] = key
    return await app.client.post(
        "/api/v1/portfolio/transactions/import",
        content=text.encode(),
        params={"dry_run": str(dry_run).lower()},
        headers=headers,
    )


async def test_an_export_imports_into_another_portfolio_as_the_same_ledger(
    portfolio: InProcessApp,
) -> None:
    alice, bob = portfolio.token(), portfolio.token()
    symbol = ticker()
    await funded(portfolio, alice, "1000", [(symbol, "2.5", "10.25")])
    url = "/api/v1/portfolio/transactions"
    pid = (await portfolio.client.get("/api/v1/portfolio", headers=alice)).json()["id"]
    withdrawal = await post(portfolio, url, {"kind": "WITHDRAWAL", "amount": "5"}, alice)
    wid = withdrawal.json()["transaction"]["id"]
    await post(portfolio, f"/api/v1/portfolios/{pid}/transactions/{wid}/reversal", {}, alice)
    exported = await portfolio.client.get("/api/v1/portfolio/transactions/export", headers=alice)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert len(exported.text.strip().splitlines()) == 1 + 4
    imported = await import_csv(portfolio, bob, exported.text)
    assert imported.status_code == 200, imported.text
    report = ImportReport.model_validate(imported.json())
    assert (report.imported, report.skipped, report.errors) == (2, 2, 0)
    theirs = (await portfolio.client.get("/api/v1/portfolio", headers=alice)).json()
    mine = (await portfolio.client.get("/api/v1/portfolio", headers=bob)).json()
    assert mine["cash"] == theirs["cash"] == "974.3750"
    assert mine["positions"][0]["lots"][0]["cost"] == theirs["positions"][0]["lots"][0]["cost"]
    # Importing the same file again finds only duplicates.
    again = ImportReport.model_validate((await import_csv(portfolio, bob, exported.text)).json())
    assert (again.imported, again.duplicates) == (0, 2)


async def test_an_import_reports_each_row_and_a_dry_run_writes_nothing(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    symbol = ticker()
    text = (
        "executed_at,kind,ticker,quantity,price,amount\n"
        "2025-01-02,DEPOSIT,,,,100\n"
        f"2025-01-03,BUY,{symbol},2,10,\n"
        "2025-01-03,LOAN,,,,5\n"
        "2025-01-02,DEPOSIT,,,,100\n"
    )
    dry = await import_csv(portfolio, caller, text, dry_run=True, if_match=None)
    assert dry.status_code == 200, dry.text
    report = ImportReport.model_validate(dry.json())
    assert [(r.line, r.status) for r in report.rows] == [
        (2, "imported"),
        (3, "imported"),
        (4, "error"),
        (5, "duplicate"),
    ]
    assert await ledger_rows(portfolio, caller) == []
    missing = await import_csv(portfolio, caller, text, if_match=None)
    assert missing.status_code == 428
    done = await import_csv(portfolio, caller, text, key="import-1")
    again = await import_csv(portfolio, caller, text, key="import-1")
    assert done.status_code == 200 and again.content == done.content
    assert [r["kind"] for r in await ledger_rows(portfolio, caller)] == ["BUY", "DEPOSIT"]


async def test_an_import_the_ledger_refuses_writes_nothing_and_names_the_line(
    portfolio: InProcessApp,
) -> None:
    caller = portfolio.token()
    symbol = ticker()
    text = (
        "executed_at,kind,ticker,quantity,price,amount\n"
        "2025-01-02,DEPOSIT,,,,100\n"
        f"2025-01-03,BUY,{symbol},2,10,\n"
        f"2025-01-04,SELL,{symbol},3,10,\n"
    )
    refused = await import_csv(portfolio, caller, text)
    assert refused.status_code == 409
    assert refused.json()["error_code"] == "INSUFFICIENT_QUANTITY"
    assert refused.json()["details"]["line"] == 4 and "Line 4" in refused.json()["message"]
    assert await ledger_rows(portfolio, caller) == []
    unusable = await import_csv(portfolio, caller, "nothing,useful\n1,2\n")
    assert unusable.status_code == 422 and unusable.json()["error_code"] == "INVALID_IMPORT"


def schwab_export(symbol: str, *newer: str) -> str:
    """An export in Schwab's layout (see test_schwab_csv.py for the layout's sources),
    newest first, ``newer`` rows above the others."""
    rows = [
        *newer,
        '"03/03/2025","Advisor Fee","","TO ADVISOR","","","","-$1.00"',
        '"03/03/2025","Advisor Fee","","TO ADVISOR","","","","-$1.00"',
        '"02/28/2025","Credit Interest","","SCHWAB1 INT 01/30-02/27","","","","$0.42"',
        f'"02/18/2025","Reinvest Shares","{symbol}","ACME CORP","0.1","$101.00","","-$10.10"',
        f'"02/18/2025","Reinvest Dividend","{symbol}","ACME CORP","","","","$10.10"',
        f'"01/21/2025","Buy","{symbol}","ACME CORP","3","$100.00","$0.65","-$300.65"',
        '"01/06/2025","MoneyLink Transfer","","Tfr BANK","","","","$1,000.00"',
    ]
    return "\n".join(
        [
            '"Date","Action","Symbol","Description","Quantity","Price","Fees & Comm","Amount"',
            *rows,
            '"Transactions Total","","","","","","","$697.77"',
        ]
    )


async def test_a_schwab_export_imports_through_the_route_once(portfolio: InProcessApp) -> None:
    caller = portfolio.token()
    symbol = ticker()
    text = schwab_export(symbol)
    dry = ImportReport.model_validate(
        (await import_csv(portfolio, caller, text, dry_run=True, if_match=None)).json()
    )
    assert dry.layout == "schwab"  # detected from the header
    assert [r.status for r in dry.rows] == [
        "imported",
        "imported",  # the same fee twice on a day is two fees
        "unsupported",
        "imported",
        "imported",
        "imported",
        "imported",
        "skipped",
    ]
    done = await import_csv(portfolio, caller, text, key="schwab-1")
    assert done.status_code == 200, done.text
    retried = await import_csv(portfolio, caller, text, key="schwab-1")
    assert retried.content == done.content
    other_layout = await portfolio.client.post(
        "/api/v1/portfolio/transactions/import",
        content=text.encode(),
        params={"layout": "native"},
        headers={
            **caller,
            "Content-Type": "text/csv",
            "If-Match": "*",
            "Idempotency-Key": "schwab-1",
        },
    )
    assert other_layout.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED", other_layout.text
    rows = await ledger_rows(portfolio, caller)
    assert sorted(r["kind"] for r in rows) == ["BUY", "BUY", "DEPOSIT", "DIVIDEND", "FEE", "FEE"]
    mine = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()
    # The statement's cash: 1000 - 300.65 + 10.10 - 10.10 - 2 x 1.00.
    assert mine["cash"] == "697.3500"
    assert mine["positions"][0]["quantity"] == "3.1"
    # The same file again: every row is already in the ledger (both equal fees included).
    again = ImportReport.model_validate((await import_csv(portfolio, caller, text)).json())
    assert (again.imported, again.duplicates, again.unsupported) == (0, 6, 1)
    # A later export overlapping this one: only its new row goes in.
    later = schwab_export(symbol, '"03/10/2025","Wire Sent","","WIRED FUNDS","","","","-$7.35"')
    more = ImportReport.model_validate(
        (await import_csv(portfolio, caller, later, key="schwab-2")).json()
    )
    assert (more.imported, more.duplicates) == (1, 6) and more.rows[0].status == "imported"
    after = (await portfolio.client.get("/api/v1/portfolio", headers=caller)).json()
    assert after["cash"] == "690.0000"
    refused = await portfolio.client.post(
        "/api/v1/portfolio/transactions/import",
        content=b"executed_at,kind,amount\n2025-01-02,DEPOSIT,5\n",
        params={"layout": "schwab", "dry_run": "true"},
        headers={**caller, "Content-Type": "text/csv"},
    )
    assert refused.status_code == 422 and refused.json()["error_code"] == "INVALID_IMPORT"

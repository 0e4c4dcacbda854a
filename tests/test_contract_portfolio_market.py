"""Contract: the portfolio service's model of ``market.rpc.quotes`` parses what market's
own models produce, and market accepts what portfolio sends.

Market owns the schemas (``services/market/events.py``); portfolio keeps its own view of
the fields it reads (``services/portfolio/market.py``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.market import events as market
from services.portfolio.market import (
    HISTORY_RPC,
    INDEX_RPC,
    QUOTES_RPC,
    HistoryReply,
    HistoryRequest,
    IndexReply,
    IndexRequest,
    QuotesReply,
    QuotesRequest,
)


def test_portfolio_asks_on_markets_subject_in_markets_shape() -> None:
    assert QUOTES_RPC == market.RPC_QUOTES
    sent = QuotesRequest(tickers=["ACME", "BRK.B"]).model_dump_json()
    assert market.QuotesRequest.model_validate_json(sent).tickers == ["ACME", "BRK.B"]


def test_portfolio_reads_markets_quotes_reply() -> None:
    tick = market.encode_tick("ACME", 187.23, 185.0, 1000, 1764167400123)
    reply = market.QuotesReply(quotes=[market.Tick.model_validate_json(tick)], missing=["ZZZ"])
    parsed = QuotesReply.model_validate_json(reply.model_dump_json())
    (quote,) = parsed.quotes
    assert (quote.ticker, quote.ts) == ("ACME", 1764167400123)
    assert Decimal(str(quote.price)) == Decimal("187.23") and parsed.missing == ["ZZZ"]
    assert quote.sector is None  # a tick has no sector


def test_portfolio_reads_the_sector_market_sends_with_each_quote() -> None:
    tick = market.Tick.model_validate_json(market.encode_tick("ACME", 10.0, 9.0, 5, 1))
    quote = market.Quote(**tick.model_dump(), sector="Industrials")
    parsed = QuotesReply.model_validate_json(
        market.QuotesReply(quotes=[quote], missing=[]).model_dump_json()
    )
    assert parsed.quotes[0].sector == "Industrials"


def test_portfolio_asks_for_unadjusted_history_and_reads_its_pages() -> None:
    assert HISTORY_RPC == market.RPC_HISTORY
    sent = HistoryRequest(tickers=["ACME"], start=date(2025, 1, 1), end=date(2025, 1, 31))
    received = market.HistoryRequest.model_validate_json(sent.model_dump_json())
    assert received.adjusted is False and received.cursor is None
    reply = market.HistoryReply(
        series=[market.CloseSeries(ticker="ACME", dates=[date(2025, 1, 2)], closes=[10.5])],
        missing=["ZZZ"],
        next_cursor=1,
    )
    parsed = HistoryReply.model_validate_json(reply.model_dump_json())
    assert parsed.series[0].closes == [10.5] and parsed.next_cursor == 1


def test_portfolio_asks_for_the_index_and_reads_its_total_return_levels() -> None:
    assert INDEX_RPC == market.RPC_INDEX
    sent = IndexRequest(start=date(2025, 1, 1), end=date(2025, 1, 31))
    received = market.IndexRequest.model_validate_json(sent.model_dump_json())
    assert (received.start, received.end) == (date(2025, 1, 1), date(2025, 1, 31))
    reply = market.IndexReply(
        dates=[date(2025, 1, 2), date(2025, 1, 3)],
        price_return=[1000.0, 1001.0],
        total_return=[1000.0, 1001.5],
    )
    parsed = IndexReply.model_validate_json(reply.model_dump_json())
    assert parsed.dates == [date(2025, 1, 2), date(2025, 1, 3)]
    assert parsed.total_return == [1000.0, 1001.5]

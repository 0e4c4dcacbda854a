"""Contract: the recommendations service's models of ``market.rpc.index`` and
``market.rpc.universe`` parse what market's own models produce, and market accepts what
recommendations sends.

Market owns the schemas (``services/market/events.py``); recommendations keeps its own
view of the fields it reads (``services/recommendations/market_inputs.py``).
"""

from __future__ import annotations

from datetime import date

from services.market import events as market
from services.recommendations.market_inputs import (
    INDEX_RPC,
    UNIVERSE_RPC,
    IndexReply,
    IndexRequest,
    UniverseReply,
    UniverseRequest,
)
from shared.messaging._wire import encode  # what the bus puts on the wire for a model


def test_recommendations_asks_for_the_index_on_markets_subject_in_markets_shape() -> None:
    assert INDEX_RPC == market.RPC_INDEX
    sent = IndexRequest(start=date(2025, 1, 1), end=date(2025, 3, 31)).model_dump_json()
    received = market.IndexRequest.model_validate_json(sent)
    assert (received.start, received.end) == (date(2025, 1, 1), date(2025, 3, 31))


def test_recommendations_reads_the_total_return_levels() -> None:
    reply = market.IndexReply(
        dates=[date(2025, 1, 2), date(2025, 1, 3)],
        price_return=[1000.0, 1004.5],
        total_return=[1000.0, 1005.25],
    )
    parsed = IndexReply.model_validate_json(reply.model_dump_json())
    assert parsed.dates == ["2025-01-02", "2025-01-03"]
    assert parsed.total_return == [1000.0, 1005.25]  # not the price-return levels


def test_recommendations_pages_through_markets_universe() -> None:
    assert UNIVERSE_RPC == market.RPC_UNIVERSE
    first = market.UniverseRequest.model_validate_json(encode(UniverseRequest()))
    assert first.listed_only and first.cursor is None
    again = market.UniverseRequest.model_validate_json(encode(UniverseRequest(cursor="ACME")))
    assert again.cursor == "ACME"
    listing = market.Listing(
        ticker="BRK.B",
        name="Berkshire Hathaway Inc. Class B",
        exchange="NYSE",
        sector="Financials",
        industry="Multi-Sector Holdings",
        status="listed",
        data_source="simulated",
    )
    reply = market.UniverseReply(securities=[listing], next_cursor="BRK.B")
    parsed = UniverseReply.model_validate_json(encode(reply))
    (security,) = parsed.securities
    assert (security.ticker, security.sector, security.industry) == (
        "BRK.B",
        "Financials",
        "Multi-Sector Holdings",
    )
    assert security.data_source == "simulated" and parsed.next_cursor == "BRK.B"
    last = UniverseReply.model_validate_json(
        encode(market.UniverseReply(securities=[], next_cursor=None))
    )
    assert last.next_cursor is None

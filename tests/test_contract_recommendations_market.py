"""Contract: the recommendations service's model of ``market.rpc.index`` parses what
market's own models produce, and market accepts what recommendations sends.

Market owns the schemas (``services/market/events.py``); recommendations keeps its own
view of the fields it reads (``services/recommendations/market_inputs.py``).
"""

from __future__ import annotations

from datetime import date

from services.market import events as market
from services.recommendations.market_inputs import INDEX_RPC, IndexReply, IndexRequest


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

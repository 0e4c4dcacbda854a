"""Contract: the recommendations service's models of ``market.rpc.index``,
``market.rpc.universe`` and ``market.rpc.closes`` parse what market's own models produce,
and market accepts what recommendations sends.

Market owns the schemas (``services/market/events.py``); recommendations keeps its own
view of the fields it reads (``services/recommendations/market_inputs.py``).
"""

from __future__ import annotations

from datetime import date

from services.market import events as market
from services.recommendations.market_inputs import (
    CLOSES_RPC,
    INDEX_RPC,
    UNIVERSE_RPC,
    ClosesReply,
    ClosesRequest,
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


def test_recommendations_reads_markets_columnar_closes() -> None:
    assert CLOSES_RPC == market.RPC_CLOSES
    sent = ClosesRequest(tickers=["ACME", "BRK.B"], start=date(2025, 1, 1), end=date(2025, 1, 8))
    received = market.ClosesRequest.model_validate_json(encode(sent))
    assert received.tickers == ["ACME", "BRK.B"] and received.cursor is None
    # Built as market builds it: model_construct from floats, NaN for no bar.
    reply = market.ClosesReply.model_construct(
        sessions=[date(2025, 1, 2), date(2025, 1, 3)],
        tickers=["ACME", "BRK.B"],
        closes=[10.5, float("nan"), 20.25, 20.5],
        volumes=[1000.0, float("nan"), 300.0, 310.0],
        actions=market.ActionColumns.model_construct(
            ticker=["BRK.B"], ex_date=[date(2025, 1, 3)], kind=["split"], value=[2.0]
        ),
        missing=["ZZZ"],
        next_cursor=2,
    )
    parsed = ClosesReply.model_validate_json(encode(reply))
    assert parsed.sessions == ["2025-01-02", "2025-01-03"]
    assert parsed.closes == [10.5, None, 20.25, 20.5] and parsed.volumes[1] is None
    assert parsed.actions.ex_date == [date(2025, 1, 3)] and parsed.actions.kind == ["split"]
    assert parsed.missing == ["ZZZ"] and parsed.next_cursor == 2

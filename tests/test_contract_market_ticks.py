"""Contract: the realtime service's consumer models parse what market sends.

Market owns its event schemas (``services/market/events.py``); realtime keeps its own
model of the fields it reads (``services/realtime/feeds.py``). These tests produce what
market really puts on the wire — ticks from ``encode_tick``, the encoder the live feed
uses (not a model: the feed's hot path builds the JSON by hand), and RPC replies and
requests as the bus encodes the models market's handlers return and realtime sends —
and parse it with the other side's models.
Nothing here skips: if market's module or encoder moves, these fail.
"""

from __future__ import annotations

from datetime import date

import orjson

from services.market import events as market
from services.realtime.feeds import (
    FEED_STATUS,
    TICK_SUBJECT_PREFIX,
    TICK_WILDCARD,
    FeedStatus,
    HistoryReply,
    HistoryRequest,
    QuotesReply,
    QuotesRequest,
    Tick,
    tick_subject,
)
from shared.messaging._wire import encode  # what the bus puts on the wire for a model

TS = 1764167400123


def test_realtime_parses_the_feeds_ticks() -> None:
    wire = market.encode_tick("ACME", 123.45, 122.0, 1234567, TS)
    parsed = Tick.model_validate_json(wire)
    assert parsed == Tick(
        ticker="ACME",
        price=123.45,
        previous_close=122.0,
        change=1.45,
        change_percent=1.1885,
        volume=1234567,
        ts=TS,
    )


def test_realtime_parses_every_field_the_encoder_writes() -> None:
    # A field market adds is fine (realtime ignores it); one realtime reads and market
    # stops writing, or writes with another type, is not.
    wire = orjson.loads(market.encode_tick("BRK.B", 10.0, 0.0, 0, TS))
    assert set(Tick.model_fields) <= set(wire)
    assert wire["change_percent"] == 0.0  # no previous close: no division by zero
    assert Tick.model_validate(wire).ticker == "BRK.B"


def test_the_encoder_and_market_s_own_tick_model_agree() -> None:
    # QuotesReply carries market's Tick model; the feed carries encode_tick's bytes: a
    # consumer of either sees the same shape.
    wire = market.encode_tick("ACME", 99.5, 100.0, 10, TS)
    assert market.Tick.model_validate_json(wire).model_dump() == orjson.loads(wire)


def test_tick_subjects_agree() -> None:
    assert market.TICK_PREFIX == TICK_SUBJECT_PREFIX
    assert TICK_WILDCARD == TICK_SUBJECT_PREFIX + ">"
    for ticker in ("ACME", "BRK.B", "BF-B"):
        assert market.tick_subject(ticker) == tick_subject(ticker)


def test_realtime_parses_market_quote_replies() -> None:
    tick = market.Tick.model_validate_json(market.encode_tick("ACME", 1.5, 1.0, 7, TS))
    sent = market.QuotesReply(quotes=[tick], missing=["ZZZZ"])
    parsed = QuotesReply.model_validate_json(encode(sent))
    assert parsed.quotes[0].ticker == "ACME" and parsed.quotes[0].change == 0.5
    assert parsed.missing == ["ZZZZ"]


def test_market_accepts_realtime_requests() -> None:
    quotes = market.QuotesRequest.model_validate_json(encode(QuotesRequest(tickers=["ACME"])))
    assert quotes.tickers == ["ACME"]
    sent = HistoryRequest(tickers=["ACME"], start=date(2026, 1, 2), end=date(2026, 3, 2))
    history = market.HistoryRequest.model_validate_json(encode(sent))
    assert (history.start, history.end, history.cursor) == (sent.start, sent.end, None)


def test_realtime_parses_market_history_replies() -> None:
    sent = market.HistoryReply(
        series=[
            market.CloseSeries(
                ticker="ACME", dates=[date(2026, 1, 2), date(2026, 1, 5)], closes=[1.5, 2.5]
            )
        ],
        missing=[],
        next_cursor=None,
    )
    parsed = HistoryReply.model_validate_json(encode(sent))
    assert parsed.series[0].closes == [1.5, 2.5]
    assert parsed.series[0].dates == [date(2026, 1, 2), date(2026, 1, 5)]


def test_realtime_parses_the_market_feed_status() -> None:
    assert market.FEED_STATUS == FEED_STATUS
    for state in ("running", "stopped"):
        sent = market.FeedStatus(state=state, interval_seconds=2.0, ts=1764167400123)
        parsed = FeedStatus.model_validate_json(encode(sent))
        assert (parsed.state, parsed.interval_seconds) == (state, 2.0)

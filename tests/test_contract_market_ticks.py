"""Contract: the realtime service's consumer models parse what market publishes.

Market owns its event schemas (``services/market/events.py``); realtime keeps its own
model of the fields it reads (``services/realtime/feeds.py``). These tests build what
market's own models produce and parse it with realtime's. Until market defines its tick
model they skip, saying so.
"""

from __future__ import annotations

import importlib
import inspect
from datetime import date
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from services.realtime.feeds import (
    FEED_STATUS,
    TICK_SUBJECT_PREFIX,
    FeedStatus,
    HistoryReply,
    HistoryRequest,
    QuotesReply,
    QuotesRequest,
    Tick,
    tick_subject,
)

AGREED_TICK = {
    "ticker": "ACME",
    "price": 123.45,
    "previous_close": 122.0,
    "change": 1.45,
    "change_percent": 1.1885,
    "volume": 1234567,
    "ts": 1764167400123,
}


def market_events() -> ModuleType:
    try:
        return importlib.import_module("services.market.events")
    except ModuleNotFoundError:
        pytest.skip("services/market/events.py does not exist yet (market publishes no ticks)")


def publisher_model(
    module: ModuleType, fields: set[str], *, exclude: set[str] = frozenset()
) -> type[BaseModel]:
    """The publisher's model carrying ``fields`` (whatever market names it)."""
    found = [
        obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseModel)
        and obj.__module__ == module.__name__
        and fields <= set(obj.model_fields)
        and not exclude & set(obj.model_fields)
    ]
    if not found:
        pytest.skip(f"services/market/events.py defines no model with fields {sorted(fields)}")
    return found[0]


def test_realtime_parses_market_ticks() -> None:
    model = publisher_model(market_events(), {"ticker", "price", "ts"}, exclude={"quotes"})
    sent: Any = model.model_validate(AGREED_TICK)
    wire = sent.model_dump_json().encode()
    parsed = Tick.model_validate_json(wire)
    for field in ("ticker", "price", "change", "change_percent", "volume", "ts"):
        assert getattr(parsed, field) == AGREED_TICK[field], field


def test_tick_subjects_agree() -> None:
    module = market_events()
    subjects = [
        value
        for name, value in vars(module).items()
        if isinstance(value, str) and value.startswith("market.tick")
    ]
    builders = [
        value
        for name, value in vars(module).items()
        if callable(value) and "tick" in name.lower() and "subject" in name.lower()
    ]
    if not subjects and not builders:
        pytest.skip("services/market/events.py names no tick subject yet")
    for subject in subjects:
        assert subject.startswith(TICK_SUBJECT_PREFIX.rstrip(".")), subject
    for builder in builders:
        assert builder("ACME") == tick_subject("ACME")


def test_realtime_parses_market_quote_replies() -> None:
    module = market_events()
    reply = publisher_model(module, {"quotes", "missing"})
    sent: Any = reply.model_validate({"quotes": [AGREED_TICK], "missing": ["ZZZZ"]})
    parsed = QuotesReply.model_validate_json(sent.model_dump_json())
    assert parsed.quotes[0].ticker == "ACME" and parsed.missing == ["ZZZZ"]


def test_market_accepts_realtime_requests() -> None:
    module = market_events()
    quotes = publisher_model(module, {"tickers"}, exclude={"start"})
    quotes.model_validate_json(QuotesRequest(tickers=["ACME"]).model_dump_json())
    history = publisher_model(module, {"tickers", "start", "end"})
    sent = HistoryRequest(tickers=["ACME"], start=date(2026, 1, 2), end=date(2026, 3, 2))
    history.model_validate_json(sent.model_dump_json())


def test_realtime_parses_market_history_replies() -> None:
    reply = publisher_model(market_events(), {"series", "missing"})
    sent: Any = reply.model_validate(
        {
            "series": [
                {"ticker": "ACME", "dates": ["2026-01-02", "2026-01-05"], "closes": [1.5, 2.5]}
            ],
            "missing": [],
            "next_cursor": None,
        }
    )
    parsed = HistoryReply.model_validate_json(sent.model_dump_json())
    assert parsed.series[0].closes == [1.5, 2.5]
    assert parsed.series[0].dates == [date(2026, 1, 2), date(2026, 1, 5)]


def test_realtime_parses_the_market_feed_status() -> None:
    module = market_events()
    assert module.FEED_STATUS == FEED_STATUS
    for state in ("running", "stopped"):
        sent = module.FeedStatus(state=state, interval_seconds=2.0, ts=1764167400123)
        parsed = FeedStatus.model_validate_json(sent.model_dump_json())
        assert (parsed.state, parsed.interval_seconds) == (state, 2.0)

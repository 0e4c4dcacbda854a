"""The stream protocol's parsing and encoding, without sockets."""

from __future__ import annotations

import orjson
import pytest

from services.realtime.feeds import Tick
from services.realtime.streams import protocol

ACTIONS = frozenset({"subscribe", "unsubscribe", "ping"})


def test_subscribe_normalises_and_dedupes() -> None:
    action = protocol.parse_action(
        b'{"action": "subscribe", "tickers": ["acme", "BRK.B", "ACME", " bf-b "]}',
        allowed=ACTIONS,
    )
    assert action.kind == "subscribe" and action.tickers == ("ACME", "BRK.B", "BF-B")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[1]", "BAD_MESSAGE"),
        (b"{", "BAD_MESSAGE"),
        (b'{"action": "dance"}', "UNKNOWN_ACTION"),
        (b'{"action": "subscribe"}', "BAD_MESSAGE"),
        (b'{"action": "subscribe", "tickers": ["TOOLONG"]}', "INVALID_TICKER"),
        (b'{"action": "subscribe", "tickers": [1]}', "INVALID_TICKER"),
    ],
)
def test_bad_messages_name_the_problem(raw: bytes, code: str) -> None:
    with pytest.raises(protocol.ProtocolError) as raised:
        protocol.parse_action(raw, allowed=ACTIONS)
    assert raised.value.code == code


def test_too_many_tickers_at_once() -> None:
    raw = orjson.dumps({"action": "subscribe", "tickers": ["A"] * 1001})
    with pytest.raises(protocol.ProtocolError, match="At most 1000"):
        protocol.parse_action(raw, allowed=ACTIONS)


def test_a_frame_is_an_array_of_messages() -> None:
    tick = Tick(ticker="ACME", price=1.5, change=0.5, change_percent=50.0, volume=3, ts=9)
    text = protocol.frame([protocol.message("pong", id=1), protocol.encode_quote(tick)])
    assert orjson.loads(text) == [
        {"type": "pong", "id": 1},
        {
            "type": "quote",
            "ticker": "ACME",
            "price": 1.5,
            "change": 0.5,
            "change_percent": 50.0,
            "volume": 3,
            "ts": 9,
        },
    ]
    snapshot = orjson.loads(protocol.encode_quote(tick, snapshot=True))
    assert snapshot["snapshot"] is True

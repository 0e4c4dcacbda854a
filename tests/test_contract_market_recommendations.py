"""Contract: the market service's models of ``recommendations.run.completed`` and
``recommendations.rpc.latest`` (its read model behind ``include_ml``) parse what the
recommendations service's own models produce, and recommendations accepts what market sends.

Recommendations owns the schemas (``services/recommendations/events.py``); market keeps its
own view of the fields it reads (``services/market/recommendation_inputs.py``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from services.market import recommendation_inputs as market
from services.market.model_view import model_call
from services.recommendations import events as recommendations
from shared.messaging import Event
from shared.messaging._wire import encode  # what the bus puts on the wire for a model


def _call(ticker: str, action: str) -> recommendations.LatestCall:
    return recommendations.LatestCall(
        id=uuid.uuid4(),
        ticker=ticker,
        action=action,
        confidence=0.73,
        score=-1.2,
        target_price=181.5,
        price_at_call=187.23,
        horizon_days=21,
        sector="Information Technology",
        thesis="Twelve-month momentum leads the score down.",
        risk_factors=["High volatility", "Low confidence"],
        factors=[
            recommendations.LatestFactor(
                key="momentum_12_1", value=-0.21, z_score=-1.6, contribution=-0.48, percentile=0.05
            ),
            recommendations.LatestFactor(
                key="liquidity", value=None, z_score=0.0, contribution=0.0, percentile=None
            ),
        ],
        methodology_disclosure="Criteria, assumptions, horizon, limitations.",
        data_sources=["market:simulated"],
        hypothetical=False,
    )


def test_market_consumes_the_publishers_stream_and_subjects() -> None:
    assert market.STREAM == recommendations.STREAM
    assert market.RUN_COMPLETED == recommendations.RUN_COMPLETED
    assert any(
        market.RUN_COMPLETED.startswith(s.removesuffix(">"))
        for s in recommendations.STREAM_SUBJECTS
    )
    assert market.LATEST_RPC == recommendations.RPC_LATEST
    assert market.PAGE <= recommendations.MAX_LATEST_PAGE


def test_market_reads_the_run_completed_event() -> None:
    run_id = uuid.uuid4()
    generated = datetime(2026, 11, 30, 22, 5, tzinfo=UTC)
    event = Event[recommendations.RunCompleted](
        event_type=recommendations.RUN_COMPLETED,
        schema_version=recommendations.RUN_COMPLETED_VERSION,
        source=recommendations.SOURCE,
        data=recommendations.RunCompleted(
            run_id=run_id,
            as_of=date(2026, 11, 30),
            model_version="mf-1.0",
            generated_at=generated,
            total_recommendations=6012,
            part=2,
            parts=3,
            changes=[
                recommendations.ActionChanged(
                    recommendation_id=uuid.uuid4(),
                    ticker="ACME",
                    action="SELL",
                    previous_action="HOLD",
                    confidence=0.7,
                    price_at_call=10.0,
                    target_price=None,
                )
            ],
        ),
    )
    parsed = Event[market.RunCompleted].model_validate_json(encode(event))
    assert parsed.event_id == event.event_id
    assert (parsed.data.run_id, parsed.data.as_of, parsed.data.generated_at) == (
        run_id,
        date(2026, 11, 30),
        generated,
    )
    assert parsed.data.total_recommendations == 6012


def test_recommendations_accepts_markets_requests() -> None:
    first = recommendations.LatestRequest.model_validate_json(encode(market.LatestRequest()))
    assert first.tickers is None and first.cursor is None and first.limit == market.PAGE
    run = uuid.uuid4()
    again = recommendations.LatestRequest.model_validate_json(
        encode(market.LatestRequest(cursor=f"{run}/ACME"))
    )
    assert again.cursor == f"{run}/ACME"


def test_market_reads_every_field_it_serves_from_the_latest_reply() -> None:
    sell = _call("ACME", "SELL")
    reply = recommendations.LatestReply(
        run_id=uuid.uuid4(),
        as_of=date(2026, 11, 30),
        model_version="mf-1.0",
        generated_at=datetime(2026, 11, 30, 22, 5, tzinfo=UTC),
        calls=[sell, _call("BRK.B", "BUY")],
        missing=[],
        next_cursor="run/BRK.B",
    )
    parsed = market.LatestReply.model_validate_json(encode(reply))
    assert (parsed.run_id, parsed.as_of, parsed.model_version, parsed.generated_at) == (
        reply.run_id,
        reply.as_of,
        reply.model_version,
        reply.generated_at,
    )
    assert [c.ticker for c in parsed.calls] == ["ACME", "BRK.B"]
    assert parsed.next_cursor == "run/BRK.B"
    stored = model_call(parsed.calls[0])
    assert stored.recommendation_id == sell.id
    assert (stored.action, stored.confidence, stored.score) == ("SELL", 0.73, -1.2)
    assert (stored.target_price, stored.price_at_call, stored.horizon_days) == (181.5, 187.23, 21)
    assert stored.factors == [f.model_dump() for f in sell.factors]
    assert (stored.thesis, stored.risk_factors) == (sell.thesis, sell.risk_factors)
    assert stored.methodology_disclosure == sell.methodology_disclosure
    assert stored.data_sources == sell.data_sources


def test_market_reads_the_reply_before_any_live_run() -> None:
    reply = recommendations.LatestReply(
        run_id=None,
        as_of=None,
        model_version=None,
        generated_at=None,
        calls=[],
        missing=[],
        next_cursor=None,
    )
    parsed = market.LatestReply.model_validate_json(encode(reply))
    assert parsed.run_id is None and parsed.calls == [] and parsed.next_cursor is None

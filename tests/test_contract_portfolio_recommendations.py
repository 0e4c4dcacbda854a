"""Contract: the portfolio service's model of ``recommendations.rpc.latest`` parses what
the recommendations service's own models produce, and recommendations accepts what
portfolio sends.

Recommendations owns the schemas (``services/recommendations/events.py``); portfolio keeps
its own view of the fields it reads (``services/portfolio/recommendations.py``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from services.portfolio import recommendations as portfolio
from services.recommendations import events as recommendations


def _call(ticker: str, action: str, *, hypothetical: bool = False) -> recommendations.LatestCall:
    return recommendations.LatestCall(
        id=uuid.uuid4(),
        ticker=ticker,
        action=action,
        confidence=0.73,
        score=1.2,
        target_price=None,
        price_at_call=187.23,
        horizon_days=20,
        sector="Tech",
        thesis="...",
        risk_factors=["volatility"],
        factors=[
            recommendations.LatestFactor(
                key="momentum", value=None, z_score=1.0, contribution=0.3, percentile=None
            )
        ],
        methodology_disclosure="...",
        data_sources=["market"],
        hypothetical=hypothetical,
    )


def test_portfolio_asks_on_the_publishers_subject_in_its_shape() -> None:
    assert portfolio.LATEST_RPC == recommendations.RPC_LATEST
    assert portfolio.PAGE <= recommendations.MAX_LATEST_PAGE
    sent = portfolio.LatestRequest(tickers=["ACME", "BRK.B"], cursor="c").model_dump_json()
    received = recommendations.LatestRequest.model_validate_json(sent)
    assert received.tickers == ["ACME", "BRK.B"] and received.cursor == "c"
    assert received.limit == portfolio.PAGE
    whole_run = portfolio.LatestRequest(tickers=None).model_dump_json()
    assert recommendations.LatestRequest.model_validate_json(whole_run).tickers is None


def test_portfolio_reads_the_latest_reply() -> None:
    sell, buy = _call("ACME", "SELL"), _call("BETA", "BUY")
    reply = recommendations.LatestReply(
        run_id=uuid.uuid4(),
        as_of=date(2026, 11, 30),
        model_version="v1",
        generated_at=datetime(2026, 11, 30, 22, tzinfo=UTC),
        calls=[sell, buy],
        missing=["ZZZ"],
        next_cursor="run/BETA",
    )
    parsed = portfolio.LatestReply.model_validate_json(reply.model_dump_json())
    assert parsed.run_id == reply.run_id and parsed.as_of == date(2026, 11, 30)
    assert [(c.id, c.ticker, c.action, c.confidence) for c in parsed.calls] == [
        (sell.id, "ACME", "SELL", 0.73),
        (buy.id, "BETA", "BUY", 0.73),
    ]
    assert parsed.missing == ["ZZZ"] and parsed.next_cursor == "run/BETA"


def test_portfolio_reads_the_reply_before_any_live_run() -> None:
    reply = recommendations.LatestReply(
        run_id=None,
        as_of=None,
        model_version=None,
        generated_at=None,
        calls=[],
        missing=["ACME"],
        next_cursor=None,
    )
    parsed = portfolio.LatestReply.model_validate_json(reply.model_dump_json())
    assert parsed.run_id is None and parsed.calls == [] and parsed.missing == ["ACME"]

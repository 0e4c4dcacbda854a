"""The market service's response bodies, encoded once with orjson.

Hot reads are cached as bytes, so FastAPI never validates them against the routes'
``response_model``: every body is built here, one function per shape, and
``services/market/tests/test_routes.py`` validates what each route sends against the model
its OpenAPI declares (a field renamed here and not in ``schemas``, or the reverse, fails).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import orjson

from services.market import schemas
from services.market.domain import Quote, Security
from services.market.domain.model_view import ModelView
from services.market.service.stocks import PriceSeries


def json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def stock_page(
    rows: list[tuple[Security, Quote | None]], fields: list[str] | None, next_cursor: str | None
) -> bytes:
    """A page of ``/stocks`` (:class:`schemas.StockPage`), with only ``fields`` if given."""
    items = [
        schemas.StockSummary.of(s, q).model_dump(include=set(fields) if fields else None)
        for s, q in rows
    ]
    return json({"items": items, "next_cursor": next_cursor})


def stock_detail(security: Security, quote: Quote | None) -> bytes:
    """``/stocks/{ticker}`` (:class:`schemas.StockDetail`)."""
    return json(schemas.StockDetail.of(security, quote).model_dump())


def _analysis(
    security: Security, live_price: float | None, result: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ticker": security.ticker,
        "name": security.name,
        "sector": security.sector,
        "live_price": live_price,
        "adjusted": True,
        **result,
    }


def analysis(security: Security, live_price: float | None, result: dict[str, Any]) -> bytes:
    """``/stocks/{ticker}/analysis`` (:class:`schemas.Analysis`)."""
    return json(_analysis(security, live_price, result))


def model_recommendation(view: ModelView) -> dict[str, Any] | None:
    """The ``ml`` section (:class:`schemas.ModelRecommendation`), None without a call."""
    run, call = view.run, view.call
    if run is None or call is None:
        return None
    return {
        "run_id": run.stamp.run_id,
        "recommendation_id": call.recommendation_id,
        "as_of": run.stamp.as_of,
        "generated_at": run.stamp.generated_at,
        "model_version": run.model_version,
        "action": call.action,
        "confidence": call.confidence,
        "score": call.score,
        "target_price": call.target_price,
        "price_at_call": call.price_at_call,
        "horizon_days": call.horizon_days,
        "factors": [
            {
                "key": f["key"],
                "value": f["value"],
                "z_score": f["z_score"],
                "contribution": f["contribution"],
                "percentile": f.get("percentile"),
            }
            for f in sorted(call.factors, key=lambda f: -abs(f["contribution"]))
        ],
        "thesis": call.thesis,
        "risk_factors": call.risk_factors,
        "methodology_disclosure": call.methodology_disclosure,
        "data_sources": call.data_sources,
    }


def analysis_with_model(
    security: Security, live_price: float | None, result: dict[str, Any], view: ModelView
) -> bytes:
    """``/stocks/{ticker}/analysis?include_ml=true`` (:class:`schemas.AnalysisWithModel`)."""
    return json(
        {
            **_analysis(security, live_price, result),
            "ml": model_recommendation(view),
            "ml_reason": view.reason(security.ticker),
        }
    )


def price_rows(series: PriceSeries, lo: int = 0, hi: int | None = None) -> list[dict[str, Any]]:
    hi = len(series.period) if hi is None else hi
    days = series.period[lo:hi].astype(str).tolist()
    last = series.last_day[lo:hi].astype(str).tolist()
    o = series.open[lo:hi].round(4).tolist()
    h = series.high[lo:hi].round(4).tolist()
    lw = series.low[lo:hi].round(4).tolist()
    c = series.close[lo:hi].round(4).tolist()
    v = series.volume[lo:hi].round(0).tolist()
    weekly = series.interval != "daily"
    return [
        {
            "date": days[i],
            "open": o[i],
            "high": h[i],
            "low": lw[i],
            "close": c[i],
            "volume": v[i],
            "last_day": last[i] if weekly else None,
        }
        for i in range(len(days))
    ]


def _header(series: PriceSeries, start: date, end: date) -> dict[str, Any]:
    return {
        "ticker": series.security.ticker,
        "interval": series.interval,
        "adjusted": series.adjusted,
        "start": start,
        "end": end,
        "data_source": series.security.data_source,
    }


def price_history_json(series: PriceSeries, start: date, end: date) -> bytes:
    return json({**_header(series, start, end), "bars": price_rows(series)})


# The JSON bar's fields, in its order: the CSV carries the same (last_day empty for daily).
_CSV_HEAD = b"date,open,high,low,close,volume,last_day\n"


def _csv_lines(series: PriceSeries, lo: int, hi: int) -> bytes:
    return "".join(
        f"{r['date']},{r['open']},{r['high']},{r['low']},{r['close']},{int(r['volume'])},"
        f"{r['last_day'] or ''}\n"
        for r in price_rows(series, lo, hi)
    ).encode()


def price_history_csv(series: PriceSeries) -> bytes:
    return _CSV_HEAD + _csv_lines(series, 0, len(series.period))


async def price_history_stream(
    series: PriceSeries, start: date, end: date, fmt: str
) -> AsyncIterator[bytes]:
    """The same bytes as :func:`price_history_json` / :func:`price_history_csv`, a
    thousand bars at a time (a long history is streamed, not built whole)."""
    step = 1000
    n = len(series.period)
    if fmt == "csv":
        yield _CSV_HEAD
        for lo in range(0, n, step):
            yield _csv_lines(series, lo, min(n, lo + step))
        return
    head = json({**_header(series, start, end), "bars": []})
    yield head[:-2]  # without the closing "]}"
    for lo in range(0, n, step):
        chunk = json(price_rows(series, lo, min(n, lo + step)))[1:-1]
        yield (b"," if lo else b"") + chunk
    yield b"]}"

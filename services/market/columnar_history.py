"""``market.rpc.closes``: adjusted closes and volumes for whole-universe inputs, columnar.

``market.rpc.history`` answers one series per security, each with its own dates, and reads
each security's corporate actions in a query of its own: fine for a portfolio's few
tickers, slow for the recommendation engine's 6,000 (docs/performance.md). This reply
carries the session calendar once and every security's closes and volumes as rows of one
matrix on it, built with numpy from one bar read and one action read per page and
serialised by pydantic-core straight from Python floats (``model_construct``: no model per
series, no validation of what we just computed).
"""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np

from services.market import events
from services.market.domain import adjustment as adj
from services.market.domain import calendar
from services.market.domain.statistics import group_slices
from services.market.repository import actions as actions_repo
from services.market.repository import bars as bars_repo
from services.market.repository import securities

# JSON bytes per security and session: a close with 6 decimals and a volume, and commas.
_CELL_BYTES = 24
_ROW_BYTES = 40


async def closes_reply(
    pool: asyncpg.Pool, request: events.ClosesRequest, *, budget_bytes: int
) -> events.ClosesReply:
    """The requested tickers from ``request.cursor`` on, as many rows as fit in
    ``budget_bytes`` (at least one)."""
    wanted = list(dict.fromkeys(t.upper() for t in request.tickers))
    start_at = request.cursor or 0
    days = calendar.sessions(request.start, request.end)
    rows_per_reply = max(1, budget_bytes // (_ROW_BYTES + _CELL_BYTES * max(1, len(days))))
    page = wanted[start_at : start_at + rows_per_reply]
    end_at = start_at + len(page)
    async with pool.acquire() as conn:
        ids = await securities.security_ids(conn, page)
        page_ids = [ids[t] for t in page if t in ids]
        bars = await bars_repo.bars_for(conn, page_ids, request.start, request.end)
        actions = await actions_repo.actions_of(conn, page_ids)

    def build() -> events.ClosesReply:
        # The exchange's sessions, plus any day a bar was stored on outside them (an
        # import's odd day is kept rather than dropped).
        sessions = np.union1d(days, bars.day) if len(bars) else days
        known = [t for t in page if t in ids]
        row_of = {ids[t]: i for i, t in enumerate(known)}
        closes = np.full((len(known), len(sessions)), np.nan)
        volumes = np.full(closes.shape, np.nan)
        for sid, rows in group_slices(bars.security_id):
            day = bars.day[rows]
            price_f, volume_f = adj.factors(day, actions.get(sid, []))
            columns = np.searchsorted(sessions, day)
            closes[row_of[sid], columns] = bars.close[rows] * price_f
            volumes[row_of[sid], columns] = bars.volume[rows] * volume_f
        in_range = [
            (ticker, a)
            for ticker in known
            for a in actions.get(ids[ticker], [])
            if request.start <= a.ex_date <= request.end
        ]
        return events.ClosesReply.model_construct(
            sessions=[d.item() for d in sessions],
            tickers=known,
            closes=np.round(closes, 6).ravel().tolist(),
            volumes=np.round(volumes, 2).ravel().tolist(),
            actions=events.ActionColumns.model_construct(
                ticker=[t for t, _ in in_range],
                ex_date=[a.ex_date for _, a in in_range],
                kind=[a.kind for _, a in in_range],
                value=[a.value for _, a in in_range],
            ),
            missing=[t for t in page if t not in ids],
            next_cursor=end_at if end_at < len(wanted) else None,
        )

    return await asyncio.to_thread(build)

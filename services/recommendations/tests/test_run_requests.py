"""POST /recommendations/runs under a burst: five times the pool's connections at once,
through the real app on the real PostgreSQL. Every answer is a proper status in the common
envelope, the pool is not wedged, and a day asked for by many at once is queued once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest

from tests.infra import TestInfra
from tests.inprocess import InProcessApp, running_app

PATH = "/api/v1/recommendations/runs"


@pytest.fixture(scope="module")
async def recommendations(
    ledger_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessApp]:
    # No market here: the runner takes each queued run and fails it quickly (inputs
    # unavailable); what is tested is the request path and the queue.
    async with running_app(
        "recommendations",
        ledger_infra,
        tmp_path_factory.mktemp("runreq"),
        catch_up_run=False,
        history_timeout_seconds=0.5,
    ) as app:
        yield app


async def idle_pool(app: InProcessApp) -> None:
    """A request answered at once, and every pooled connection back but the outbox
    relay's LISTEN connection (held for the app's life). The runner shares the pool while
    it fails the queued runs (no market here), so give it time to drain its queue."""
    pool = app.app.state.resources.pool
    async with asyncio.timeout(5):
        answer = await app.client.get(PATH, params={"limit": 1}, headers=app.token())
        assert answer.status_code == 200
    async with asyncio.timeout(90):
        while pool.get_size() - pool.get_idle_size() > 1:  # noqa: ASYNC110 (polling the pool)
            await asyncio.sleep(0.05)


async def test_a_burst_asking_for_one_day_queues_it_once(recommendations: InProcessApp) -> None:
    burst = 5 * recommendations.settings.db_pool_max
    day = date(1994, 3, 1)
    headers = recommendations.token("analyst")
    async with asyncio.timeout(120):
        answers = await asyncio.gather(
            *(
                recommendations.client.post(PATH, json={"as_of": day.isoformat()}, headers=headers)
                for _ in range(burst)
            )
        )
    assert Counter(a.status_code for a in answers) == {202: 1, 409: burst - 1}, {
        a.status_code: a.text for a in answers if a.status_code not in (202, 409)
    }
    queued = next(a.json() for a in answers if a.status_code == 202)
    assert queued["trading_day"] == day.isoformat() and queued["kind"] == "on_demand"
    for refused in (a.json() for a in answers if a.status_code == 409):
        assert set(refused) == {"error_code", "message", "details", "timestamp", "request_id"}
        assert refused["error_code"] == "RUN_EXISTS"
        assert refused["details"]["run_id"] == queued["id"]
    await idle_pool(recommendations)


async def test_a_burst_of_distinct_requests_queues_each_once(
    recommendations: InProcessApp,
) -> None:
    burst = 5 * recommendations.settings.db_pool_max
    days = [date(1993, 1, 4) + timedelta(days=i) for i in range(burst)]
    async with asyncio.timeout(120):
        answers = await asyncio.gather(
            *(
                recommendations.client.post(
                    PATH,
                    json={"as_of": d.isoformat()},
                    headers=recommendations.token("admin" if i % 2 else "analyst"),
                )
                for i, d in enumerate(days)
            )
        )
    assert [a.status_code for a in answers] == [202] * burst, [
        a.text for a in answers if a.status_code != 202
    ]
    bodies = [a.json() for a in answers]
    assert len({b["id"] for b in bodies}) == burst
    assert sorted(b["trading_day"] for b in bodies) == [d.isoformat() for d in days]
    await idle_pool(recommendations)
    # Each is listed once (the runner may have taken some up meanwhile: any status).
    listed: list[str] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await recommendations.client.get(
            PATH, params=params, headers=recommendations.token()
        )
        assert page.status_code == 200
        listed += [r["id"] for r in page.json()["items"]]
        if (cursor := page.json()["next_cursor"]) is None:
            break
    assert {b["id"] for b in bodies} <= set(listed) and len(listed) == len(set(listed))


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("analyst", 202), ("admin", 202)])
async def test_roles_on_runs(recommendations: InProcessApp, role: str, status: int) -> None:
    day = {"viewer": date(1992, 6, 1), "analyst": date(1992, 6, 2), "admin": date(1992, 6, 3)}
    answer = await recommendations.client.post(
        PATH, json={"as_of": day[role].isoformat()}, headers=recommendations.token(role)
    )
    assert answer.status_code == status, answer.text
    if status == 403:
        assert answer.json()["error_code"] == "FORBIDDEN"
    else:
        assert answer.json()["requested_by"] and answer.json()["status"] in {
            "queued",
            "running",
            "failed",
        }
    anonymous = await recommendations.client.post(PATH, json={})
    assert anonymous.status_code == 401

"""A published run reaches JetStream once, through the outbox, with exactly its changes;
published recommendations cannot be altered."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import asyncpg
import pytest

from bourse.parts import RECOMMENDATIONS
from services.recommendations import events
from services.recommendations.demo import _DEMO_RUN, demo_run
from services.recommendations.domain import Action
from services.recommendations.service import publish_run
from shared.db import open_connection
from shared.messaging import Delivered, Event, connect_bus
from tests.infra import TestInfra
from tests.platform import Platform

pytestmark = pytest.mark.e2e


async def test_a_run_is_published_once_with_its_changes(
    platform: Platform, seeded: TestInfra
) -> None:
    base = demo_run()
    run_id = uuid.uuid4()
    flipped = {"ACME", "BRGT"}
    flip = {Action.BUY: Action.SELL, Action.SELL: Action.HOLD, Action.HOLD: Action.BUY}
    recs = tuple(
        dataclasses.replace(
            rec,
            id=uuid.uuid5(run_id, rec.ticker),
            run_id=run_id,
            action=flip[rec.action] if rec.ticker in flipped else rec.action,
        )
        for rec in base.recommendations
    )
    run = dataclasses.replace(base, id=run_id, recommendations=recs)

    received: list[Event[events.RunCompleted]] = []
    arrived = asyncio.Event()

    async def handler(event: Event[events.RunCompleted], _: Delivered) -> None:
        if event.data.run_id == run_id:
            received.append(event)
            arrived.set()

    bus = await connect_bus(seeded.nats_url, name="test-consumer", prefix=seeded.nats_prefix)
    await bus.ensure_stream(events.STREAM, events.STREAM_SUBJECTS)
    consumer = await bus.consume(
        events.STREAM,
        f"test-{uuid.uuid4().hex[:8]}",
        events.RUN_COMPLETED,
        Event[events.RunCompleted],
        handler,
        fetch_timeout=0.5,
    )
    conn = await open_connection(seeded.dsn_for(RECOMMENDATIONS))
    try:
        assert await publish_run(conn, run) is True
        assert await publish_run(conn, run) is False  # the same run twice: nothing new
        await asyncio.wait_for(arrived.wait(), 15)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        assert len(received) == 1
        data = received[0].data
        assert (data.part, data.parts, data.total_recommendations) == (1, 1, len(recs))
        previous = {rec.ticker: rec.action for rec in base.recommendations}
        assert {c.ticker for c in data.changes} == flipped
        for change in data.changes:
            assert change.previous_action == previous[change.ticker].value
            assert change.action == flip[previous[change.ticker]].value
        assert received[0].event_type == events.RUN_COMPLETED
        published = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL AND subject = $1",
            events.RUN_COMPLETED,
        )
        assert published >= 2  # the demo run's event and this one
    finally:
        await consumer.stop()
        await conn.close()
        await bus.close()


async def test_published_recommendations_are_immutable(seeded: TestInfra) -> None:
    conn = await open_connection(seeded.dsn_for(RECOMMENDATIONS))
    try:
        with pytest.raises(asyncpg.RestrictViolationError, match="immutable"):
            await conn.execute(
                "UPDATE recommendations SET action = 'BUY' WHERE run_id = $1", _DEMO_RUN
            )
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("DELETE FROM recommendations WHERE run_id = $1", _DEMO_RUN)
    finally:
        await conn.close()

"""A published run reaches JetStream once, through the outbox, with exactly its changes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest

from bourse.parts import RECOMMENDATIONS
from services.recommendations import events, service
from services.recommendations.domain import publication
from services.recommendations.domain import spec as s
from services.recommendations.domain.calibration import Calibration
from services.recommendations.tests.test_routes import synthetic_panel
from shared.db import open_connection
from shared.messaging import Delivered, Event, connect_bus
from tests.infra import TestInfra
from tests.platform import Platform

pytestmark = pytest.mark.e2e


async def test_a_run_is_published_once_with_its_changes(
    platform: Platform, seeded: TestInfra
) -> None:
    prefix = "".join(chr(65 + int(c, 16) % 26) for c in uuid.uuid4().hex[:2])
    names = [f"{prefix}{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(40)]
    panel = synthetic_panel(names, seed=int(uuid.uuid4().int % 1000))
    day_1, day_2 = date(1995, 10, 2), date(1995, 11, 1)  # within the panel's sessions
    received: list[Event[events.RunCompleted]] = []
    wanted: set[uuid.UUID] = set()
    arrived = asyncio.Event()

    async def handler(event: Event[events.RunCompleted], _: Delivered) -> None:
        if event.data.run_id in wanted:
            received.append(event)
            if len(received) >= 2:
                arrived.set()

    async def publish(day: date) -> service.Published | None:
        calls = publication.calls_for_ledger(panel, day, s.CURRENT, Calibration())
        run_id = uuid.uuid4()
        wanted.add(run_id)
        async with conn.transaction():
            return await service.publish_run(
                conn,
                run_id=run_id,
                kind="on_demand",
                calls=calls,
                calibration=Calibration(),
                model_version=s.CURRENT.version,
            )

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
        first = await publish(day_1)
        second = await publish(day_2)
        assert first is not None and second is not None
        assert await publish(day_2) is None  # the same trading day again: nothing new
        await asyncio.wait_for(arrived.wait(), 15)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        assert len(received) == 2
        by_run = {e.data.run_id: e.data for e in received}
        assert {c.ticker for c in by_run[first.run.id].changes} == set(names)  # all new
        data = by_run[second.run.id]
        assert (data.part, data.parts, data.total_recommendations) == (1, 1, len(names))
        before = {r.ticker: r.action.value for r in first.recommendations}
        after = {r.ticker: r.action.value for r in second.recommendations}
        moved = {t for t in names if before[t] != after[t]}
        assert moved, "the two days' calls should differ somewhere"
        assert {c.ticker for c in data.changes} == moved
        for change in data.changes:
            assert change.previous_action == before[change.ticker]
            assert change.action == after[change.ticker]
        assert received[0].event_type == events.RUN_COMPLETED
        assert received[0].schema_version == events.RUN_COMPLETED_VERSION
    finally:
        await consumer.stop()
        await conn.close()
        await bus.close()

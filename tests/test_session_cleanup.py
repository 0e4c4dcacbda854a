"""What a test session leaves behind on the shared servers: nothing of its own.

The session's database is dropped and its Redis keys deleted by the root ``conftest.py``;
its JetStream streams (the parts declare theirs when they start) are deleted by
:func:`tests.infra.delete_streams`, and only those under the session's prefix.
"""

from __future__ import annotations

import uuid

from shared.messaging import connect_bus
from tests.infra import TestInfra, delete_streams


async def test_streams_under_a_prefix_are_deleted_and_no_others(infra: TestInfra) -> None:
    mine = f"{infra.nats_prefix}c{uuid.uuid4().hex[:6]}"
    other = f"t{uuid.uuid4().hex[:10]}"
    buses = [
        await connect_bus(infra.nats_url, name="test-cleanup", prefix=prefix)
        for prefix in (mine, other)
    ]
    try:
        for bus in buses:
            await bus.ensure_stream("MARKET", ["market.eod.>"])
            await bus.ensure_stream("RECOMMENDATIONS", ["recommendations.>"])
        deleted = await delete_streams(infra.nats_url, mine)
        assert sorted(deleted) == [f"{mine.upper()}_MARKET", f"{mine.upper()}_RECOMMENDATIONS"]
        left = {info.config.name for info in await buses[0].client.jsm().streams_info()}
        assert not {name for name in left if name and name.startswith(mine.upper())}
        assert f"{other.upper()}_MARKET" in left  # another session's are not ours to delete
    finally:
        await delete_streams(infra.nats_url, other)
        for bus in buses:
            await bus.close()

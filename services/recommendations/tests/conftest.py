"""Fixtures of the recommendations tests: a database of their own.

The ledger is one hash chain and "the latest run" is one run per database, so these tests
publish into a private database (and NATS namespace) instead of the session's, where the
platform's own runs live: a tampered row or a synthetic run here never shows up there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bourse.parts import RECOMMENDATIONS
from tests.infra import TestInfra, own_infra


@pytest.fixture(scope="module")
async def ledger_infra(infra: TestInfra) -> AsyncIterator[TestInfra]:
    async with own_infra(infra, "rec", [RECOMMENDATIONS]) as own:
        yield own

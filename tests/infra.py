"""Where a test session's infrastructure is (see the root ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from bourse.parts import Part
from shared.db import service_dsn


@dataclass(frozen=True)
class TestInfra:
    """Where this test session's infrastructure is, and its private namespaces."""

    __test__ = False

    run_id: str
    admin_url: str  # superuser DSN pointing at the session database
    admin_server_url: str  # superuser DSN as given (maintenance database)
    database: str
    redis_url: str
    redis_prefix: str
    nats_url: str
    nats_prefix: str

    def dsn_for(self, part: Part) -> str:
        """The DSN a part uses: its own role, on the session database."""
        return service_dsn(self.admin_server_url, database=self.database, role=part.db_role)

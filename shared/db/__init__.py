"""PostgreSQL: pools bound to one service's schema and role, versioned migrations,
and the administrative bootstrap that creates those roles and schemas."""

from shared.db.bootstrap import (
    drop_database,
    ensure_database,
    ensure_service_schema,
    service_dsn,
    with_database,
)
from shared.db.migrations import Migration, MigrationError, load_migrations, migrate
from shared.db.pool import create_pool, open_connection, ping

__all__ = [
    "Migration",
    "MigrationError",
    "create_pool",
    "drop_database",
    "ensure_database",
    "ensure_service_schema",
    "load_migrations",
    "migrate",
    "open_connection",
    "ping",
    "service_dsn",
    "with_database",
]

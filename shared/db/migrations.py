"""Versioned SQL migrations, one sequence per service.

A service keeps its migrations as files ``NNNN_short_name.sql`` in a package
(``services/market/migrations/0001_securities.sql``). :func:`migrate` applies the
ones not yet recorded in ``<schema>.schema_migrations``, each in its own
transaction, under an advisory lock so two instances starting together do not race.
Running it again changes nothing; editing an applied file is refused (checksum), unless
the service lists the earlier text's checksum as accepted (``previous_checksums``): only for
an edit that cannot change what a database that applied the earlier text holds (for example
a fix to a branch that always failed there).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """A migration set is inconsistent (duplicate version, edited file) or failed."""


@dataclass(frozen=True)
class Migration:
    source: str  # which sequence it belongs to: the service's own, or a shared mechanism's
    version: int
    name: str
    sql: str
    # Checksums of earlier texts of this file that count as applied (see the module doc).
    previous_checksums: frozenset[str] = frozenset()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(
    package: str,
    *,
    source: str = "service",
    previous_checksums: dict[int, frozenset[str]] | None = None,
) -> list[Migration]:
    """Read the ``NNNN_name.sql`` files of ``package``, ordered by version;
    ``previous_checksums`` (by version) are earlier texts accepted as applied."""
    accepted = previous_checksums or {}
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _FILE_NAME.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        found.append(
            Migration(
                source,
                version,
                match.group(2),
                entry.read_text("utf-8"),
                accepted.get(version, frozenset()),
            )
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"duplicate migration versions in {package}: {versions}")
    return found


_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    source      text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, version)
)
"""


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: list[Migration]
) -> list[Migration]:
    """Apply the pending ``migrations`` in ``schema``; return those applied now.

    ``conn`` must be connected as the schema's owner, with ``schema`` on its search path.
    """
    lock_key = f"bourse.migrate.{schema}"
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", lock_key)
    try:
        await conn.execute(f'SET search_path = "{schema}"')
        await conn.execute(_LEDGER)
        rows = await conn.fetch("SELECT source, version, name, checksum FROM schema_migrations")
        applied = {(r["source"], r["version"]): r for r in rows}
        done: list[Migration] = []
        for migration in migrations:
            row = applied.get((migration.source, migration.version))
            if row is not None:
                if (
                    row["checksum"] != migration.checksum
                    and row["checksum"] not in migration.previous_checksums
                ):
                    raise MigrationError(
                        f"{schema}: migration {migration.source}/{migration.version:04d}_"
                        f"{migration.name} was edited after it was applied; add a new one instead"
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (source, version, name, checksum)"
                        " VALUES ($1, $2, $3, $4)",
                        migration.source,
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"{schema}: migration {migration.source}/{migration.version:04d}_"
                    f"{migration.name} failed: {exc}"
                ) from exc
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock_key)

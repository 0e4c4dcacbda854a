"""Each part's database: its role, its schema, its migrations; demo data; users.

Run with a superuser DSN (``admin_url``). A part connects with ``<PREFIX>_DATABASE_URL``
when that is set (docker compose: role and password come from it, and the role is
given that password), otherwise as its own role without a password (local and
embedded servers trust loopback connections).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

from bourse.parts import BY_NAME, Part
from shared.db import (
    Migration,
    ensure_database,
    ensure_service_schema,
    migrate,
    open_connection,
    service_dsn,
)

DEFAULT_DATABASE = "bourse"
Reporter = Callable[[str], None]


class ProvisionError(RuntimeError):
    """A part's database could not be set up, or a module it needs is missing."""


@dataclass(frozen=True)
class PartDatabase:
    """How one part connects: role, password (if any), database and the full DSN."""

    part: Part
    role: str
    password: str | None
    database: str
    dsn: str


def part_database(
    part: Part, admin_url: str, *, database: str, environ: Mapping[str, str]
) -> PartDatabase:
    """The part's connection: from ``<PREFIX>_DATABASE_URL`` if set, else derived."""
    configured = environ.get(f"{part.env_prefix}_DATABASE_URL")
    if configured:
        url = urlsplit(configured)
        role = unquote(url.username) if url.username else part.db_role
        password = unquote(url.password) if url.password else None
        return PartDatabase(part, role, password, url.path.lstrip("/") or database, configured)
    dsn = service_dsn(admin_url, database=database, role=part.db_role)
    return PartDatabase(part, part.db_role, None, database, dsn)


def _optional_module(name: str) -> ModuleType | None:
    """``name`` imported, or None if it (or a package above it) does not exist.

    An import error raised *inside* an existing module is not hidden.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def part_migrations(part: Part) -> list[Migration]:
    """What ``<part.module>.app.migrations()`` returns."""
    module = _optional_module(f"{part.module}.app")
    if module is None or not hasattr(module, "migrations"):
        raise ProvisionError(f"{part.name}: {part.module}.app has no migrations() (not written?)")
    found: list[Migration] = module.migrations()
    return found


async def prepare_part(admin_url: str, target: PartDatabase) -> None:
    """Database, role (with its password, if any) and schema of one part."""
    await ensure_database(admin_url, target.database)
    await ensure_service_schema(
        admin_url,
        database=target.database,
        role=target.role,
        schema=target.part.schema,
        password=target.password,
    )


async def migrate_part(admin_url: str, target: PartDatabase) -> list[Migration]:
    """Prepare the part's schema, then apply its pending migrations as the part."""
    await prepare_part(admin_url, target)
    migrations = part_migrations(target.part)
    conn = await open_connection(target.dsn)
    try:
        return await migrate(conn, target.part.schema, migrations)
    finally:
        await conn.close()


async def migrate_all(
    admin_url: str,
    parts: Sequence[Part],
    *,
    database: str,
    environ: Mapping[str, str],
    report: Reporter,
) -> None:
    """Migrate every part in turn, reporting what was applied."""
    for part in parts:
        target = part_database(part, admin_url, database=database, environ=environ)
        applied = await migrate_part(admin_url, target)
        if applied:
            names = ", ".join(f"{m.source}/{m.version:04d}_{m.name}" for m in applied)
            report(f"{part.name}: applied {names}")
        else:
            report(f"{part.name}: schema {part.schema} up to date")


async def seed_demo(target: PartDatabase, options: Mapping[str, Any] | None = None) -> bool:
    """Run ``<part.module>.demo.seed_demo(conn, ...)`` as the part; False if it has none.
    Of ``options`` (the demo users' ids, the part's NATS), the keywords the part's seed
    takes are passed to it."""
    module = _optional_module(f"{target.part.module}.demo")
    seed = getattr(module, "seed_demo", None) if module is not None else None
    if seed is None:
        return False
    accepted = inspect.signature(seed).parameters
    extra = {k: v for k, v in (options or {}).items() if k in accepted}
    conn = await open_connection(target.dsn)
    try:
        await seed(conn, **extra)
    finally:
        await conn.close()
    return True


async def demo_user_ids(admin_url: str, *, database: str, environ: Mapping[str, str]) -> list[str]:
    """The ids (tokens' subjects) of the demo accounts that exist, read as the gateway
    through ``gateway.admin.user_id_of``; [] without the gateway."""
    module = _optional_module("gateway.admin")
    find = getattr(module, "user_id_of", None) if module is not None else None
    if find is None:
        return []
    target = part_database(BY_NAME["gateway"], admin_url, database=database, environ=environ)
    conn = await open_connection(target.dsn)
    try:
        found = [await find(conn, username) for _, username, _ in demo_accounts()]
    finally:
        await conn.close()
    return [str(user_id) for user_id in found if user_id is not None]


def demo_accounts() -> list[tuple[str, str, str]]:
    """``gateway.demo.DEMO_ACCOUNTS`` (role, username, password), or [] if not there."""
    module = _optional_module("gateway.demo")
    accounts = getattr(module, "DEMO_ACCOUNTS", None) if module is not None else None
    return [(str(role), str(user), str(password)) for role, user, password in accounts or []]


async def create_user(
    admin_url: str,
    *,
    username: str,
    password: str,
    role: str,
    database: str,
    environ: Mapping[str, str],
) -> Any:
    """Create a user through ``gateway.admin.create_user``, connected as the gateway."""
    module = _optional_module("gateway.admin")
    create = getattr(module, "create_user", None) if module is not None else None
    if create is None:
        raise ProvisionError("gateway.admin.create_user is not available (gateway not installed?)")
    target = part_database(BY_NAME["gateway"], admin_url, database=database, environ=environ)
    conn = await open_connection(target.dsn)
    try:
        result = create(conn, username, password, role)
        if inspect.isawaitable(result):
            result = await result
        return result
    finally:
        await conn.close()

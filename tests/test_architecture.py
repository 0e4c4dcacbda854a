"""The architecture's rules, checked on the source (small AST lints, as polar does).

- A service never imports another service, nor the gateway; the gateway imports no
  service; ``shared`` imports no part of Bourse (only the CLI knows every part).
- SQL runs only in repository modules (``repository.py`` or a ``repository/`` package).
- Route modules do not reach for the database: they call the service layer.
- Domain modules are pure: no I/O library, no web framework.
- One error tree: nobody raises ``HTTPException``.
- Configuration is read through settings classes, never ``os.environ`` in a part.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "__init__.py").exists())
SQL_METHODS = {
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "copy_records_to_table",
    "copy_to_table",
    "copy_from_query",
    "copy_from_table",
}
_SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|LOCK|TRUNCATE|COPY|LISTEN|NOTIFY)\b",
    re.IGNORECASE,
)
IO_MODULES = {"asyncpg", "redis", "nats", "httpx", "aiohttp", "fastapi", "starlette", "shared.db"}


def source_files(*roots: str) -> Iterator[Path]:
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            relative = path.relative_to(REPO).parts
            if "tests" in relative or "bench" in relative:
                continue
            yield path


def imported_modules(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _looks_like_sql(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and bool(_SQL.match(node.value))
    )


def is_repository(path: Path) -> bool:
    return path.stem == "repository" or "repository" in path.relative_to(REPO).parts


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_part(service: str) -> None:
    forbidden = {f"services.{other}" for other in SERVICES if other != service} | {
        "gateway",
        "bourse",
    }
    offenders = [
        f"{rel(path)}: {module}"
        for path in source_files(f"services/{service}")
        for module in imported_modules(parse(path))
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]
    assert offenders == []


def test_the_gateway_imports_no_service_and_shared_imports_no_part() -> None:
    offenders = [
        f"{rel(path)}: {module}"
        for path in source_files("gateway")
        for module in imported_modules(parse(path))
        if module.split(".")[0] in {"services", "bourse"}
    ]
    offenders += [
        f"{rel(path)}: {module}"
        for path in source_files("shared")
        for module in imported_modules(parse(path))
        if module.split(".")[0] in {"services", "gateway", "bourse", "tests"}
    ]
    assert offenders == []


def test_sql_runs_only_in_repositories() -> None:
    offenders = []
    for path in source_files("services", "gateway"):
        if is_repository(path):
            continue
        for node in ast.walk(parse(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_METHODS
                and node.args
                and _looks_like_sql(node.args[0])
            ):
                offenders.append(f"{rel(path)}:{node.lineno} .{node.func.attr}(...)")
    assert offenders == []


def test_routes_do_not_touch_the_database() -> None:
    offenders = [
        f"{rel(path)}: {module}"
        for path in source_files("services", "gateway")
        if path.stem == "routes"
        for module in imported_modules(parse(path))
        if module.split(".")[-1] == "repository"
        or ".repository." in f".{module}."
        or module == "asyncpg"
    ]
    assert offenders == []


def test_domain_modules_are_pure() -> None:
    offenders = [
        f"{rel(path)}: {module}"
        for path in source_files("services", "gateway")
        if path.stem == "domain" or "domain" in path.relative_to(REPO).parts
        for module in imported_modules(parse(path))
        if any(module == io or module.startswith(io + ".") for io in IO_MODULES)
    ]
    assert offenders == []


def test_no_http_exception_and_no_environment_reads_in_parts() -> None:
    offenders = []
    for path in source_files("services", "gateway"):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Name) and node.id == "HTTPException":
                offenders.append(f"{rel(path)}:{node.lineno} HTTPException")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"environ", "getenv"}
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                offenders.append(f"{rel(path)}:{node.lineno} os.{node.attr}")
    assert offenders == []

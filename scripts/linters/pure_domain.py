"""``impure-domain``: domain modules do no I/O.

A ``domain`` module (or ``domain/`` package) holds the rules and the maths: it imports no
database, cache, messaging or HTTP library and no web framework, so it is tested without
any server and reused by any caller.
"""

from __future__ import annotations

from collections.abc import Iterator

from scripts.linters.base import Rule, SourceFile, Violation, imported_modules, within

NAME = "impure-domain"
IO_PACKAGES = (
    "asyncpg",
    "redis",
    "nats",
    "httpx",
    "aiohttp",
    "fastapi",
    "starlette",
    "uvicorn",
    "shared.db",
    "shared.redis",
    "shared.messaging",
    "shared.http",
)


def check(source: SourceFile) -> Iterator[Violation]:
    if not source.in_layer("domain"):
        return
    reported: set[int] = set()
    for line, module in imported_modules(source.tree):
        if line not in reported and any(within(module, io) for io in IO_PACKAGES):
            reported.add(line)
            yield line, f"a domain module imports {module} (I/O); keep it pure"


RULE = Rule(NAME, "domain modules import no I/O library and no web framework", check)

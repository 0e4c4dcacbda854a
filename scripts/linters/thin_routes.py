"""``route-touches-database``: route modules reach data only through the service layer.

A ``routes`` module (or ``routes/`` package) imports no repository and not asyncpg: the
handler parses, calls a use case and returns a schema, so the use case can be called
(and tested) without HTTP and the handler stays a few lines.
"""

from __future__ import annotations

from collections.abc import Iterator

from scripts.linters.base import Rule, SourceFile, Violation, imported_modules, within

NAME = "route-touches-database"


def check(source: SourceFile) -> Iterator[Violation]:
    if not source.in_layer("routes"):
        return
    reported: set[int] = set()
    for line, module in imported_modules(source.tree):
        if line in reported:
            continue
        if "repository" in module.split(".") or within(module, "asyncpg"):
            reported.add(line)
            yield line, f"a route module imports {module}; call the service layer instead"


RULE = Rule(NAME, "route modules import no repository and no database driver", check)

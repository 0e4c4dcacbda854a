"""``part-boundaries``: each part imports only what it may.

A service imports no other service, nor the gateway, nor the CLI: cross-context data moves
over NATS, and each service can be deployed, scaled and changed alone. The gateway imports
no service (it reaches them over HTTP). ``shared`` imports no part of Bourse: it is the
library every part imports, free of their terms. (Only the ``bourse`` CLI knows every
part.)
"""

from __future__ import annotations

from collections.abc import Iterator

from scripts.linters.base import Rule, SourceFile, Violation, imported_modules, within

NAME = "part-boundaries"


def forbidden(source: SourceFile) -> set[str]:
    if source.service is not None:
        return {"gateway", "bourse", "tests"}
    if source.top == "gateway":
        return {"services", "bourse", "tests"}
    if source.top == "shared":
        return {"services", "gateway", "bourse", "tests"}
    return set()


def check(source: SourceFile) -> Iterator[Violation]:
    barred = forbidden(source)
    own = f"services.{source.service}"
    reported: set[int] = set()
    for line, module in imported_modules(source.tree):
        if line in reported:
            continue
        if any(within(module, package) for package in barred):
            message = f"{source.top} must not import {module}"
        elif source.service and module.startswith("services.") and not within(module, own):
            message = f"{own} must not import another service: {module}"
        else:
            continue
        reported.add(line)
        yield line, message


RULE = Rule(NAME, "a service imports no other part; the gateway no service; shared no part", check)

"""``request-takes-pool``: request code takes the request's connection, never the pool.

Routes and use cases (a ``routes`` or ``service`` module or package) receive one
connection, in the transaction the request owns (``shared.deps.DbConn``), and pass it
down. A use case that acquires from the pool, or takes a pool, can end up waiting for a
second connection while its request holds the first: with enough concurrent requests every
connection is held by a request waiting for another, and the pool is wedged for good. (The
pool also refuses this at run time: ``shared.db.pool.SecondConnectionError``.)

Code that is not a request -- a consumer, the feed, a WebSocket session -- may take the
pool; where such code lives in a service module, say so with a waiver on the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from scripts.linters.base import Rule, SourceFile, Violation

NAME = "request-takes-pool"
_POOL_NAMES = {"Pool", "DbPool"}


def _names_a_pool(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id in _POOL_NAMES:
            return True
        if isinstance(node, ast.Attribute) and node.attr in _POOL_NAMES:
            return True
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and any(name in node.value.split(".") for name in _POOL_NAMES)
        ):
            return True
    return False


def check(source: SourceFile) -> Iterator[Violation]:
    if not (source.in_layer("routes") or source.in_layer("service")):
        return
    for node in ast.walk(source.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "acquire"
        ):
            yield node.lineno, "request code acquires from the pool; take the request's DbConn"
        elif isinstance(node, ast.arg) and _names_a_pool(node.annotation):
            yield node.lineno, f"{node.arg!r} is a pool; request code takes the request's DbConn"


RULE = Rule(NAME, "routes and use cases take the request's connection, never the pool", check)

"""``sql-outside-repository``: every SQL statement lives in a repository module.

A repository is ``repository.py`` or a module of a ``repository/`` package. Keeping SQL
there keeps routes thin and the rest testable without a database, and makes one place to
read when a table changes. Two shapes are caught outside them:

- a call of a connection's query method (``execute``, ``fetch``, ``fetchrow``, ...) whose
  first argument is a SQL literal (or an f-string starting as one);
- a named constant holding SQL (``_CLAIM = "SELECT ..."`` at module or class level), the
  way a statement is usually kept and later run from anywhere.

In ``shared`` the storage mechanisms are its repositories: the ``shared/db`` package
(roles, schemas, the migrations ledger) and ``shared/messaging/outbox.py`` (the outbox
and inbox tables).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from scripts.linters.base import Rule, SourceFile, Violation

NAME = "sql-outside-repository"

QUERY_METHODS = frozenset(
    {
        "execute",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "copy_records_to_table",
        "copy_to_table",
        "copy_from_query",
        "copy_from_table",
        "cursor",
        "prepare",
    }
)
KEYWORDS = (
    "SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|LOCK|TRUNCATE|COPY|LISTEN|NOTIFY"
    "|GRANT|REVOKE|SET|VACUUM|ANALYZE|REFRESH|CALL|DO"
)
# A query method's argument: a keyword in any case (the method says it is SQL) and more
# after it (a lone word is a Redis command: ``redis.execute("SET", ...)``).
SQL_ARGUMENT = re.compile(rf"^\s*({KEYWORDS})\s+\S", re.IGNORECASE)
# A constant: an upper-case keyword and a word after it, so that prose ("Create a user.")
# and single words ("DELETE", an HTTP method) are not taken for SQL.
SQL_CONSTANT = re.compile(rf"^\s*({KEYWORDS})\s+[\w(*'\"$]")
SHARED_STORAGE = (PurePosixPath("shared/db"), PurePosixPath("shared/messaging/outbox.py"))


def is_repository(source: SourceFile) -> bool:
    if source.in_layer("repository"):
        return True
    return any(source.path == p or p in source.path.parents for p in SHARED_STORAGE)


def _text(node: ast.expr) -> str | None:
    """The literal text of a string constant; an f-string's leading literal, followed by
    ``{}`` when a placeholder comes next (``f"TRUNCATE {table}"``)."""
    if isinstance(node, ast.JoinedStr) and node.values:
        head = _text(node.values[0])
        return "{}" if head is None else head + ("{}" if len(node.values) > 1 else "")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _constants(body: list[ast.stmt]) -> Iterator[tuple[int, str, ast.expr]]:
    for node in body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield node.lineno, target.id, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            if isinstance(node.target, ast.Name):
                yield node.lineno, node.target.id, node.value
        elif isinstance(node, ast.ClassDef):
            yield from _constants(node.body)


def check(source: SourceFile) -> Iterator[Violation]:
    if source.top not in {"services", "gateway", "shared"} or is_repository(source):
        return
    for node in ast.walk(source.tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_METHODS
            and node.args
        ):
            text = _text(node.args[0])
            if text is not None and SQL_ARGUMENT.match(text):
                yield node.lineno, f".{node.func.attr}() runs SQL outside a repository module"
    for line, name, value in _constants(source.tree.body):
        text = _text(value)
        if text is not None and SQL_CONSTANT.match(text):
            yield line, f"{name} holds SQL outside a repository module"


RULE = Rule(NAME, "SQL statements (run, or held in constants) only in repository modules", check)

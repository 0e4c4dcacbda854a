"""``http-exception``: one error tree; nobody raises ``HTTPException``.

Errors are ``shared.errors.AppError`` subclasses (each part's ``errors.py``), rendered in
the one envelope by the one handler ``shared.errors`` installs. A raised or subclassed
``HTTPException`` (FastAPI's or Starlette's, under any alias) bypasses the part's error
codes. Catching it, as that handler does, is fine.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from scripts.linters.base import Rule, SourceFile, Violation

NAME = "http-exception"


def _aliases(tree: ast.Module) -> set[str]:
    names = {"HTTPException"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "HTTPException":
                    names.add(alias.asname or alias.name)
    return names


def _names_http_exception(node: ast.expr | None, aliases: set[str]) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id in aliases
    return isinstance(node, ast.Attribute) and node.attr == "HTTPException"


def check(source: SourceFile) -> Iterator[Violation]:
    if source.top not in {"services", "gateway", "shared"}:
        return
    aliases = _aliases(source.tree)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Raise) and _names_http_exception(node.exc, aliases):
            yield node.lineno, "raises HTTPException; raise the part's AppError subclass"
        elif isinstance(node, ast.ClassDef) and any(
            _names_http_exception(base, aliases) for base in node.bases
        ):
            yield node.lineno, f"{node.name} subclasses HTTPException; subclass AppError"


RULE = Rule(NAME, "no raised or subclassed HTTPException: one error tree", check)

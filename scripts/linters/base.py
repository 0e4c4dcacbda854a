"""What every rule shares: the parsed file, the violation, the rule and its skip comment.

A rule is a named check over one parsed source file. It decides for itself which files it
applies to (by their path: a service's ``routes.py``, a ``domain`` module, anything under
``shared/``) and returns ``(line, message)`` pairs.

A violation is waived by a comment on the line it is reported on, naming the rule::

    rows = await conn.fetch("SELECT 1")  # lint-skip: sql-outside-repository (why)

Several names are separated by commas. There is no skip-all: a waiver says which rule it
waives, and one that waives nothing (the code moved on) is itself reported, so waivers do
not outlive their reason. (``# noqa`` is ruff's and rejects these names.)
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

Violation = tuple[int, str]

SKIP_RE = re.compile(r"#\s*lint-skip:\s*(?P<names>[a-z0-9-]+(?:\s*,\s*[a-z0-9-]+)*)")


@dataclass(frozen=True)
class SourceFile:
    """One module: its path relative to the repository root, its tree and its comments
    (by line number; a waiver in a string is not a waiver)."""

    path: PurePosixPath
    tree: ast.Module
    comments: dict[int, str]

    @classmethod
    def parse(cls, path: PurePosixPath, text: str) -> SourceFile:
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        comments = {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}
        return cls(path, ast.parse(text, filename=str(path)), comments)

    @property
    def top(self) -> str:
        """The package the file belongs to: ``gateway``, ``shared``, ``services``, ..."""
        return self.path.parts[0]

    @property
    def service(self) -> str | None:
        """The service's name for a file under ``services/<name>/``, else None."""
        parts = self.path.parts
        return parts[1] if len(parts) > 2 and parts[0] == "services" else None

    def in_layer(self, layer: str) -> bool:
        """True for the module ``<layer>.py`` and for anything in a ``<layer>/`` package."""
        return self.path.stem == layer or layer in self.path.parts[:-1]


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    check: Callable[[SourceFile], Iterable[Violation]]


@dataclass(frozen=True)
class Finding:
    path: PurePosixPath
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


def skips(line: str) -> set[str]:
    match = SKIP_RE.search(line)
    if match is None:
        return set()
    return {name.strip() for name in match.group("names").split(",")}


def lint(
    source: SourceFile, rules: Iterable[Rule], known: Iterable[str] | None = None
) -> list[Finding]:
    """The violations of ``rules`` in ``source`` that no comment waives, and every waiver
    that names a rule not in ``known`` (default: ``rules``) or, for a rule that ran,
    waives nothing."""
    rules = list(rules)
    ran = {rule.name for rule in rules}
    known = ran if known is None else set(known)
    used: set[tuple[int, str]] = set()
    findings = []
    for rule in rules:
        for line, message in rule.check(source):
            if rule.name in skips(source.comments.get(line, "")):
                used.add((line, rule.name))
            else:
                findings.append(Finding(source.path, line, rule.name, message))
    for number, comment in sorted(source.comments.items()):
        for name in sorted(skips(comment)):
            if name not in known:
                findings.append(Finding(source.path, number, "lint-skip", f"unknown rule {name!r}"))
            elif name in ran and (number, name) not in used:
                findings.append(
                    Finding(source.path, number, "lint-skip", f"waives nothing: {name}")
                )
    return findings


def source_files(root: Path, packages: Iterable[str]) -> Iterator[SourceFile]:
    """Every module of ``packages`` under ``root``, tests and benchmarks left out."""
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if {"tests", "bench"} & set(relative.parts):
                continue
            yield SourceFile.parse(relative, path.read_text(encoding="utf-8"))


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every absolute import. ``from x import y`` gives ``x`` and
    ``x.y``: ``y`` may be a module (``from services.market import repository``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")

"""Check the architecture rules over gateway/, services/ and shared/; exit 1 on violations."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.linters import (
    boundaries,
    error_tree,
    one_connection,
    pure_domain,
    settings_only,
    sql,
    thin_routes,
)
from scripts.linters.base import Finding, Rule, lint, source_files

RULES: tuple[Rule, ...] = (
    boundaries.RULE,
    sql.RULE,
    thin_routes.RULE,
    pure_domain.RULE,
    error_tree.RULE,
    settings_only.RULE,
    one_connection.RULE,
)
PACKAGES = ("gateway", "services", "shared")
REPO = Path(__file__).resolve().parents[2]


def lint_tree(root: Path = REPO, rules: Sequence[Rule] = RULES) -> tuple[int, list[Finding]]:
    """``(files checked, findings)`` for every module of :data:`PACKAGES` under ``root``."""
    checked, findings = 0, []
    for source in source_files(root, PACKAGES):
        checked += 1
        findings += lint(source, rules, known=[rule.name for rule in RULES])
    return checked, findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.linters", description=__doc__)
    parser.add_argument("--only", metavar="RULE,...", help="run only these rules")
    parser.add_argument("--list", action="store_true", help="list the rules and exit")
    args = parser.parse_args(argv)
    if args.list:
        for rule in RULES:
            sys.stdout.write(f"{rule.name:24} {rule.summary}\n")
        return 0
    rules = RULES
    if args.only:
        names = {name.strip() for name in args.only.split(",")}
        unknown = names - {rule.name for rule in RULES}
        if unknown:
            sys.stderr.write(f"unknown rule(s): {', '.join(sorted(unknown))}\n")
            return 2
        rules = tuple(rule for rule in RULES if rule.name in names)
    checked, findings = lint_tree(REPO, rules)
    for finding in findings:
        sys.stdout.write(f"{finding}\n")
    if findings:
        sys.stdout.write(f"{len(findings)} violation(s) in {checked} files\n")
        return 1
    sys.stdout.write(f"architecture: {checked} files, {len(rules)} rules, no violations\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

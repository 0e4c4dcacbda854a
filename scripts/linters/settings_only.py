"""``environment-read``: configuration comes through settings classes.

Services, the gateway and ``shared`` read no ``os.environ`` / ``os.getenv``: each part's
``Settings`` (``shared.settings``) is built once at start-up and passed down, so a bad
or missing variable stops the part with its name, and tests pass settings in. (The
``bourse`` CLI, which sets the parts' environment up, is outside this rule.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from scripts.linters.base import Rule, SourceFile, Violation

NAME = "environment-read"
READERS = {"environ", "getenv", "environb", "getenvb"}


def check(source: SourceFile) -> Iterator[Violation]:
    if source.top not in {"services", "gateway", "shared"}:
        return
    for node in ast.walk(source.tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in READERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            yield node.lineno, f"os.{node.attr}: read configuration through a settings class"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name in READERS:
                    yield node.lineno, f"imports os.{alias.name}: use a settings class"


RULE = Rule(NAME, "no os.environ / os.getenv in services, gateway, shared", check)

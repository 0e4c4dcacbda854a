"""The architecture's rules (``scripts/linters``): the whole tree keeps them, and each
rule catches what it names on small snippets (so a rule that silently stopped matching
fails here, not in review)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from textwrap import dedent

import pytest

from scripts.linters.__main__ import RULES, lint_tree, main
from scripts.linters.base import Finding, SourceFile, lint

RULE_NAMES = {rule.name for rule in RULES}


def findings(path: str, code: str) -> list[Finding]:
    return lint(SourceFile.parse(PurePosixPath(path), dedent(code)), RULES)


def rules_hit(path: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for f in findings(path, code)]


def test_the_tree_keeps_every_rule() -> None:
    checked, found = lint_tree()
    assert checked > 100  # gateway, services and shared were all walked
    assert [str(f) for f in found] == []


def test_the_linter_walks_parts_and_leaves_tests_out(tmp_path: Path) -> None:
    for relative in ("services/alpha/routes.py", "services/alpha/tests/test_routes.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("import asyncpg\n")
    checked, found = lint_tree(tmp_path)
    assert checked == 1
    assert [(str(f.path), f.rule) for f in found] == [
        ("services/alpha/routes.py", "route-touches-database")
    ]


def test_the_command_exits_1_on_violations_and_2_on_an_unknown_rule() -> None:
    assert main(["--only", "part-boundaries"]) == 0
    assert main(["--only", "no-such-rule"]) == 2


# --- part-boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("services/alpha/service.py", "from services.beta import repository\n"),
        ("services/alpha/service.py", "import services.beta.events\n"),
        ("services/alpha/service.py", "from services import beta\n"),
        ("services/alpha/app.py", "from gateway.authn import Principal\n"),
        ("gateway/proxy.py", "from services.market.schemas import StockDetail\n"),
        ("shared/runtime.py", "from gateway import policy\n"),
        ("shared/log.py", "import bourse.cli\n"),
    ],
)
def test_part_boundaries_catches_an_import_across_parts(path: str, code: str) -> None:
    assert rules_hit(path, code) == [(1, "part-boundaries")]


def test_part_boundaries_allows_own_package_and_shared() -> None:
    code = """
        from services.alpha import repository
        from services.alpha.domain import rules
        from shared.errors import AppError
        import services
    """
    assert rules_hit("services/alpha/service.py", code) == []


# --- sql-outside-repository -----------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        'async def f(conn):\n    await conn.fetch("SELECT id FROM users")\n',
        'async def f(conn):\n    await conn.execute("delete from users where id = $1", 1)\n',
        'async def f(conn, t):\n    await conn.execute(f"TRUNCATE {t}")\n',
        '_CLAIM = """\nSELECT id FROM outbox\nFOR UPDATE SKIP LOCKED\n"""\n',
        'QUERY: str = "UPDATE users SET role = $2 WHERE id = $1"\n',
        'class Queries:\n    LATEST = "WITH q AS (SELECT 1) SELECT * FROM q"\n',
    ],
)
def test_sql_outside_a_repository_is_caught(code: str) -> None:
    hit = rules_hit("services/alpha/service.py", code)
    assert [rule for _, rule in hit] == ["sql-outside-repository"]


def test_sql_in_repositories_and_prose_are_fine() -> None:
    code = '_LATEST = "SELECT price FROM latest_quotes WHERE ticker = $1"\n'
    assert rules_hit("services/alpha/repository.py", code) == []
    assert rules_hit("services/alpha/repository/quotes.py", code) == []
    assert rules_hit("shared/db/migrations.py", code) == []
    assert rules_hit("shared/messaging/outbox.py", code) == []
    assert [r for _, r in rules_hit("shared/messaging/bus.py", code)] == ["sql-outside-repository"]
    prose = '''
        """Create a user; the username must be free."""
        METHODS = ("GET", "DELETE")
        SUMMARY = "Delete one of the caller's alert rules."
        async def f(redis):
            await redis.execute("SET", "k", "v")
    '''
    assert rules_hit("services/alpha/service.py", prose) == []


# --- route-touches-database -----------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "from services.alpha import repository\n",
        "from services.alpha.repository import quotes\n",
        "import asyncpg\n",
    ],
)
def test_a_route_module_touching_the_database_is_caught(code: str) -> None:
    assert rules_hit("services/alpha/routes.py", code) == [(1, "route-touches-database")]
    assert rules_hit("services/alpha/routes/stocks.py", code) == [(1, "route-touches-database")]
    assert rules_hit("services/alpha/service.py", code) == []


# --- request-takes-pool ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("async def f(pool: asyncpg.Pool) -> None: ...\n", 1),
        ("async def f(pool: DbPool) -> None: ...\n", 1),
        ("async def f(pool: 'asyncpg.Pool') -> None: ...\n", 1),
        ("async def f(x):\n    async with x.pool.acquire() as conn:\n        pass\n", 2),
        ("async def f(r):\n    conn = await resources.pool.acquire()\n", 2),
    ],
)
def test_request_code_taking_the_pool_is_caught(code: str, line: int) -> None:
    for path in (
        "services/alpha/service.py",
        "services/alpha/service/stocks.py",
        "gateway/routes.py",
    ):
        assert rules_hit(path, code) == [(line, "request-takes-pool")]
    # Background modules may: a consumer, the feed, the app's lifespan.
    assert rules_hit("services/alpha/consumers.py", code) == []


def test_a_connection_parameter_and_a_waived_pool_pass() -> None:
    fine = "async def f(conn: asyncpg.Connection) -> None: ...\n"
    assert rules_hit("services/alpha/service.py", fine) == []
    waived = (
        "async def f(\n    pool: asyncpg.Pool,  # lint-skip: request-takes-pool (NATS)\n): ...\n"
    )
    assert rules_hit("services/alpha/service.py", waived) == []


# --- impure-domain --------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["import asyncpg\n", "from fastapi import Request\n", "from shared.db import create_pool\n"],
)
def test_io_in_a_domain_module_is_caught(code: str) -> None:
    assert rules_hit("services/alpha/domain.py", code) == [(1, "impure-domain")]
    assert rules_hit("services/alpha/domain/indicators.py", code) == [(1, "impure-domain")]


def test_a_pure_domain_module_passes() -> None:
    code = "import math\nimport numpy as np\nfrom shared.errors import AppError\n"
    assert rules_hit("services/alpha/domain.py", code) == []


# --- http-exception -------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "from fastapi import HTTPException\ndef f():\n    raise HTTPException(404)\n",
        "import fastapi\ndef f():\n    raise fastapi.HTTPException(status_code=404)\n",
        "from starlette.exceptions import HTTPException as E\ndef f():\n    raise E(400)\n",
        "from fastapi import HTTPException\nclass Gone(HTTPException):\n    pass\n",
    ],
)
def test_http_exception_is_caught(code: str) -> None:
    assert [rule for _, rule in rules_hit("gateway/proxy.py", code)] == ["http-exception"]


def test_handling_http_exception_is_fine() -> None:
    code = """
        from starlette.exceptions import HTTPException as StarletteHTTPException
        def install(app, handler):
            app.add_exception_handler(StarletteHTTPException, handler)
    """
    assert rules_hit("shared/errors.py", code) == []


# --- environment-read -----------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import os\nURL = os.environ['MARKET_URL']\n",
        "import os\nURL = os.getenv('MARKET_URL')\n",
        "from os import environ\n",
    ],
)
def test_environment_reads_are_caught(code: str) -> None:
    for path in ("services/alpha/config.py", "gateway/app.py", "shared/settings.py"):
        assert [rule for _, rule in rules_hit(path, code)] == ["environment-read"], path
    assert rules_hit("bourse/cli.py", code) == []  # the CLI sets the environment up


# --- the skip comment -----------------------------------------------------------------


def test_a_skip_comment_waives_the_named_rule_on_its_line() -> None:
    code = "import asyncpg  # lint-skip: route-touches-database (the pool's type only)\n"
    assert rules_hit("services/alpha/routes.py", code) == []


def test_a_skip_comment_must_name_the_rule_it_waives() -> None:
    wrong = "import asyncpg  # lint-skip: impure-domain\n"
    assert sorted(rules_hit("services/alpha/routes.py", wrong)) == [
        (1, "lint-skip"),  # waives nothing here
        (1, "route-touches-database"),
    ]
    bare = "import asyncpg  # lint-skip\n"
    assert rules_hit("services/alpha/routes.py", bare) == [(1, "route-touches-database")]


def test_a_waiver_must_be_a_comment() -> None:
    code = 'import asyncpg; HOW = "# lint-skip: route-touches-database"\n'
    assert rules_hit("services/alpha/routes.py", code) == [(1, "route-touches-database")]


def test_a_stale_or_misspelt_skip_comment_is_reported() -> None:
    stale = "import math  # lint-skip: impure-domain\n"
    assert [f.message for f in findings("services/alpha/domain.py", stale)] == [
        "waives nothing: impure-domain"
    ]
    misspelt = "import asyncpg  # lint-skip: route-touches-db\n"
    assert [f.message for f in findings("services/alpha/routes.py", misspelt)][-1] == (
        "unknown rule 'route-touches-db'"
    )


def test_every_rule_has_a_distinct_name() -> None:
    assert len(RULE_NAMES) == len(RULES)

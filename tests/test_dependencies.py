"""The dependency declarations agree with the code and with the two locks.

Every package the parts import is a declared runtime dependency (not merely present
because something else pulls it in), and every package the tests and benchmarks import is
declared in the runtime set or an extra. ``requirements.lock`` (what the image installs)
pins the runtime set and none of the tools; ``requirements-dev.lock`` (what
``scripts/install`` installs) pins the same versions plus the extras.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"shared", "gateway", "services", "bourse", "tests", "scripts", "bench"}
PARTS = ("gateway", "services", "shared", "bourse")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)==(?P<version>[^\s;]+)", re.MULTILINE)


def declared(requirements: Iterable[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, requirements)}


RUNTIME = declared(PROJECT["dependencies"])
EXTRAS = {
    extra: declared(requirements)
    for extra, requirements in PROJECT["optional-dependencies"].items()
}
EVERYTHING = RUNTIME | {name: r for reqs in EXTRAS.values() for name, r in reqs.items()}


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(m["name"]): m["version"] for m in _PIN.finditer(text)}


def is_test_or_bench(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return "tests" in parts or parts[0] == "bench" or path.name == "conftest.py"


def third_party_imports(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """``(file, top-level module)`` for every import of a module from outside Bourse."""
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                local = (path.parent / f"{top}.py").exists() or (path.parent / top).is_dir()
                if top in sys.stdlib_module_names or top in FIRST_PARTY or local:
                    continue
                yield str(path.relative_to(ROOT)), top


def undeclared(imports: Iterable[tuple[str, str]], allowed: set[str]) -> list[str]:
    distributions = packages_distributions()
    missing = set()
    for where, module in imports:
        names = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not names & allowed:
            missing.add(f"{where}: {module} (from {sorted(names) or 'nothing installed'})")
    return sorted(missing)


def part_files() -> list[Path]:
    return [
        path
        for part in PARTS
        for path in sorted((ROOT / part).rglob("*.py"))
        if not is_test_or_bench(path)
    ]


def test_every_package_the_parts_import_is_a_runtime_dependency() -> None:
    files = part_files()
    assert len(files) > 100
    assert undeclared(third_party_imports(files), set(RUNTIME)) == []


def test_every_package_the_tests_and_benchmarks_import_is_declared() -> None:
    files = [
        path
        for path in sorted(ROOT.glob("**/*.py"))
        if not {".venv", ".bourse"} & set(path.relative_to(ROOT).parts) and is_test_or_bench(path)
    ]
    assert len(files) > 20
    assert undeclared(third_party_imports(files), set(EVERYTHING)) == []


def test_the_runtime_lock_pins_the_runtime_dependencies_and_no_tool() -> None:
    runtime = pins("requirements.lock")
    for name, requirement in RUNTIME.items():
        assert name in runtime, name
        assert requirement.specifier.contains(runtime[name], prereleases=True), (
            f"{name}=={runtime[name]} outside {requirement}"
        )
    tools = {name for reqs in EXTRAS.values() for name in reqs} - set(RUNTIME)
    assert tools, "the extras declare the tools"
    # A small library that both a tool and a runtime package need: plotly (skfolio's,
    # the portfolio optimiser's) reads versions with packaging at run time.
    tools -= {"packaging"}
    # The extras' heavy transitive dependencies (the load tester's web UI, the plotting
    # library behind backtesting) must not sneak in either.
    assert sorted((tools | {"bokeh", "flask", "gevent"}) & set(runtime)) == []


def test_the_dev_lock_adds_the_extras_on_the_runtime_pins() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    for name, requirement in EVERYTHING.items():
        assert name in dev, name
        assert requirement.specifier.contains(dev[name], prereleases=True), (
            f"{name}=={dev[name]} outside {requirement}"
        )


@pytest.mark.parametrize(
    ("script", "lock"),
    [("deploy/Dockerfile", "requirements.lock"), ("scripts/install", "requirements-dev.lock")],
)
def test_each_installer_uses_its_lock(script: str, lock: str) -> None:
    installs = re.findall(r"pip install[^\n]*?-r\s+(\S+)", (ROOT / script).read_text())
    assert installs == [lock]

